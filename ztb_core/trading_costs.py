"""Trading costs per unit of position changed: the configuration every P&L computation reads
(`ztb_core.pnl` for the convention). Kept apart from the P&L arithmetic so that a configuration
which names costs (the live config the console reads) does not load numpy.

    cost_rate = (fee_bps + spread_bps / 2 + slippage_bps) / 10_000
"""

from __future__ import annotations

from pydantic import Field

from .config import ZtbModel


class CostConfig(ZtbModel):
    """Trading costs, applied per unit of position changed."""

    fee_bps: float = Field(1.0, ge=0, le=1000, description="exchange/broker fee per side, basis points")
    spread_bps: float = Field(
        1.0, ge=0, le=1000, description="quoted bid/ask spread, basis points (half paid per side)"
    )
    slippage_bps: float = Field(0.5, ge=0, le=1000, description="extra adverse fill price per side, basis points")

    @property
    def rate(self) -> float:
        return cost_rate(self.fee_bps, self.spread_bps, self.slippage_bps)


def cost_rate(fee_bps: float, spread_bps: float = 0.0, slippage_bps: float = 0.0) -> float:
    return (fee_bps + spread_bps / 2.0 + slippage_bps) / 10_000.0
