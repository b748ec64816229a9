"""PPO training: the gymnasium trading environment, the market slices it trains on, async
checkpoints with exact resume, the training loop, the loaded agent, and the supervisor.

Heavy imports (torch, stable-baselines3, pandas) happen inside the modules that need them;
importing `ztb_core.rl` itself is cheap.
"""
