from ztb_core.pretrain.module import EpochBatchSampler


def test_ddp_ranks_split_one_epoch_without_overlap():
    single = [tuple(b) for b in EpochBatchSampler(1000, 8, 10, seed=0)]
    r0 = [tuple(b) for b in EpochBatchSampler(1000, 8, 5, seed=0, rank=0, world=2)]
    r1 = [tuple(b) for b in EpochBatchSampler(1000, 8, 5, seed=0, rank=1, world=2)]
    assert set(r0).isdisjoint(r1)
    assert sorted(r0 + r1) == sorted(single)


def test_resumed_epoch_skips_the_batches_already_trained():
    full = EpochBatchSampler(500, 4, 10, seed=3)
    full.set_epoch(2)
    resumed = EpochBatchSampler(500, 4, 10, seed=3)
    resumed.resume_epoch, resumed.resume_offset = 2, 6
    resumed.set_epoch(2)
    assert list(resumed) == list(full)[6:] and len(resumed) == 4
    resumed.set_epoch(3)  # later epochs are whole again
    full.set_epoch(3)
    assert list(resumed) == list(full)
