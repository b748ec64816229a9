KIND_VIEWS: dict = {}
