"""Ground-truth market simulator: one seeded market -> Crypto Lake tables, a golden Binance feed, the true BBO."""

from lake_pipeline.sim.simulate import SimSummary, SimulationError, simulate

__all__ = ["SimSummary", "SimulationError", "simulate"]
