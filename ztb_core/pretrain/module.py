"""Lightning module and data module of the Stage-1 pretraining."""

from __future__ import annotations

import math
import time

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .baselines import fill_all
from .config import PretrainConfig
from .dataset import FixedMaskSet, RandomMaskBatches
from .guard import grads_finite, non_finite_terms, raise_non_finite, terms_with_bad_gradient
from .losses import total_loss
from .metrics import ReconstructionMetrics, better
from .model import MultiTimeframeAutoencoder


def inputs(batch: dict[str, torch.Tensor], timeframes: list[str]) -> dict[str, torch.Tensor]:
    return {tf: batch[f"x:{tf}"] for tf in timeframes}


class PretrainModule(L.LightningModule):
    def __init__(
        self,
        config: dict,
        lengths: dict[str, int],
        aux_stats: dict,
        data_info: dict | None = None,
        t5_config: dict | None = None,
        backbone_module: torch.nn.Module | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["backbone_module"])
        self.cfg = PretrainConfig.model_validate(config)
        self.timeframes = list(self.cfg.window.timeframes)
        if t5_config is not None and backbone_module is None:
            # restoring from a checkpoint: rebuild the stored T5 architecture (weights follow from the
            # state dict), so evaluation never needs the original pretrained folder
            # transformers on first use: huggingface_hub reads HF_HUB_OFFLINE once, at import, after t5._offline() set it
            from transformers import T5Config, T5EncoderModel

            backbone_module = T5EncoderModel(T5Config.from_dict(t5_config))
        self.model = MultiTimeframeAutoencoder(
            self.timeframes, lengths, self.cfg.model, backbone_module=backbone_module
        )
        # outside `model`, so the exported encoder (the `model.` weights) is the same with or without it
        self.rv_head = (
            torch.nn.Linear(self.model.embedding_dim, len(self.cfg.loss.rv_horizons))
            if self.cfg.loss.rv_aux > 0
            else None
        )
        if self.model.is_t5:
            self.hparams["t5_config"] = self.model.backbone_config.to_dict()
        self._val: ReconstructionMetrics | None = None
        self._val_loss: list[float] = []
        self._val_rv: list[float] = []
        self._t_last: float | None = None
        self._samples = 0
        self._last_batch: tuple[dict, int] | None = None

    # ---- staged unfreezing (T5) ------------------------------------------------------------
    def _set_backbone_trainable(self, trainable: bool) -> None:
        for p in self.model.backbone_parameters():
            p.requires_grad_(trainable)

    def on_train_epoch_start(self) -> None:
        if self.model.is_t5:
            self._set_backbone_trainable(self.current_epoch >= self.cfg.model.t5.freeze_epochs)

    # ---- steps --------------------------------------------------------------------------------
    def losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict]:
        """(reconstructions, total loss, its parts): the reconstruction losses plus, with
        `loss.rv_aux`, the realised-variance head's squared error on the rows whose target exists."""
        recon, embedding = self.model(inputs(batch, self.timeframes))
        loss, parts = total_loss(recon, batch, self.timeframes, self.cfg.loss)
        if self.rv_head is not None:
            err = (self.rv_head(embedding.float()) - batch["rv"]) ** 2
            ok = batch["rv_ok"]
            parts["rv"] = (err * ok).sum() / ok.sum().clamp(min=1)
            loss = loss + self.cfg.loss.rv_aux * parts["rv"]
            parts["total"] = loss
        return recon, loss, parts

    def training_step(self, batch, batch_idx):
        _, loss, parts = self.losses(batch)
        if not bool(torch.isfinite(loss.detach())):  # before backward: the weights stay good
            raise_non_finite(
                "loss",
                int(self.global_step),
                [k for k in non_finite_terms(parts) if k != "total"],
                batch.get("positions"),
                batch_idx,
                int(self.current_epoch),
            )
        self._last_batch = (batch, batch_idx)
        bs = batch["positions"].shape[0]
        self._samples += bs
        self.log_dict(
            {f"train/{k}": v.detach() for k, v in parts.items()},
            on_step=True,
            on_epoch=False,
            batch_size=bs,
            prog_bar=False,
        )
        self.log("train/loss", loss.detach(), on_step=True, prog_bar=True, batch_size=bs)
        opt = self.optimizers(use_pl_optimizer=False)
        if opt is not None:
            self.log("train/lr", float(opt.param_groups[0]["lr"]), on_step=True, batch_size=bs)
        now = time.perf_counter()
        if self._t_last is None:
            self._t_last = now
            self._samples = 0
        elif now - self._t_last >= 2.0:
            self.log("train/samples_per_s", self._samples / (now - self._t_last), on_step=True, batch_size=bs)
            self._t_last, self._samples = now, 0
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        """A finite loss can still have a NaN gradient (e.g. sqrt at 0): stop before the update."""
        params = [p for p in self.parameters() if p.requires_grad]
        if grads_finite(params) or self._last_batch is None:
            return
        batch, batch_idx = self._last_batch

        def parts():
            return self.losses(batch)[2]

        with torch.enable_grad():
            bad = terms_with_bad_gradient(parts, params)
        raise_non_finite(
            "gradient", int(self.global_step), bad, batch.get("positions"), batch_idx, int(self.current_epoch)
        )

    def on_validation_epoch_start(self) -> None:
        self._val = ReconstructionMetrics(self.timeframes, self.cfg.loss.consistency_tol)
        self._val_loss = []
        self._val_rv = []

    def validation_step(self, batch, batch_idx):
        recon, loss, parts = self.losses(batch)
        self._val_loss.append(float(loss))
        if "rv" in parts:
            self._val_rv.append(float(parts["rv"]))
        recon = {tf: r.float() for tf, r in recon.items()}
        self._val.update("model", recon, batch)
        for kind, rec in fill_all(batch, self.timeframes).items():
            self._val.update(kind, rec, batch)

    def on_validation_epoch_end(self) -> None:
        if self._val is None or not self._val_loss:
            return
        res = self._val.compute()
        values = {"val_loss": float(np.mean(self._val_loss))}
        if self._val_rv:
            values["val/rv_mse"] = float(np.mean(self._val_rv))
        for tf in self.timeframes:
            m, lin = res["model"][tf], res["linear"][tf]
            values[f"val/corr_return_{tf}"] = m["corr_return"]
            values[f"val/corr_return_linear_{tf}"] = lin["corr_return"]
            values[f"val/mse_{tf}"] = m["mse"]
            values[f"val/mse_linear_{tf}"] = lin["mse"]
            values[f"val/corr_level_{tf}"] = m["corr_level"]
            # the curves that matter: interior / boundary returns beside the STRONGEST baseline
            for short, metric in (
                ("corr_interior", "corr_return_interior"),
                ("mse_interior", "mse_return_interior"),
                ("corr_boundary", "corr_return_boundary"),
            ):
                best = float("nan")
                for method, per_tf in res.items():
                    if method != "model" and better(metric, per_tf[tf][metric], best):
                        best = per_tf[tf][metric]
                values[f"val/{short}_{tf}"] = m[metric]
                values[f"val/{short}_baseline_{tf}"] = best
        clean = {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}
        self.log_dict(clean, on_epoch=True, sync_dist=True)
        self.last_val_results = res

    # ---- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self):
        o = self.cfg.optim
        backbone = {id(p) for p in self.model.backbone_parameters()}
        base = [p for p in self.parameters() if id(p) not in backbone]  # the rv head's too
        groups = [{"params": base, "lr": o.lr}]
        max_lr = [o.lr]
        if backbone:
            bb_lr = o.lr / self.cfg.model.t5.lr_ratio
            groups.append({"params": self.model.backbone_parameters(), "lr": bb_lr})
            max_lr.append(bb_lr)
        opt = torch.optim.AdamW(groups, lr=o.lr, weight_decay=o.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=max_lr, total_steps=self.cfg.trainer.max_steps + 1, pct_start=o.pct_start
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


class EpochBatchSampler(Sampler):
    """Batches of a fresh permutation per epoch, seeded by (seed, epoch): the data order is a
    function of the epoch alone, and a resumed epoch skips the batches it had already trained on."""

    def __init__(self, n: int, batch_size: int, batches_per_epoch: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.batches, self.seed = n, batch_size, batches_per_epoch, seed
        # DDP: every rank draws the same order and takes every world-th batch (no sample twice per step)
        self.rank, self.world = rank, world
        self.epoch = 0
        self.resume_epoch = -1
        self.resume_offset = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _offset(self) -> int:
        return self.resume_offset if self.epoch == self.resume_epoch else 0

    def __len__(self) -> int:
        return max(self.batches - self._offset(), 0)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        need = self.batches * self.world * self.batch_size
        reps = -(-need // self.n)
        order = np.concatenate([rng.permutation(self.n) for _ in range(reps)])[:need]
        for b in range(self._offset(), self.batches):
            k = b * self.world + self.rank
            yield order[k * self.batch_size : (k + 1) * self.batch_size].tolist()


class PretrainDataModule(L.LightningDataModule):
    def __init__(self, cfg: PretrainConfig, prepared):
        super().__init__()
        self.cfg = cfg
        self.prepared = prepared
        self.sampler: EpochBatchSampler | None = None

    def _loader_kwargs(self) -> dict:
        t = self.cfg.trainer
        kw: dict = {"num_workers": t.num_workers, "pin_memory": torch.cuda.is_available()}
        if t.num_workers > 0:
            kw.update(prefetch_factor=t.prefetch_factor, persistent_workers=t.persistent_workers)
        return kw

    def train_dataloader(self) -> DataLoader:
        t = self.cfg.trainer
        arrays = self.prepared.arrays
        pos = arrays.index.split("train")
        ds = RandomMaskBatches(arrays, pos, self.cfg.mask, self.cfg.seed)
        batches = t.epoch_steps * self.cfg.optim.accumulate
        trainer = getattr(self, "trainer", None)
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        self.sampler = EpochBatchSampler(len(pos), t.batch_size, batches, self.cfg.seed, rank, world)
        if trainer is not None and trainer.global_step > 0:
            done = trainer.global_step * self.cfg.optim.accumulate - trainer.current_epoch * batches
            if 0 < done < batches:
                self.sampler.resume_epoch, self.sampler.resume_offset = trainer.current_epoch, done
        return DataLoader(ds, batch_size=None, sampler=self.sampler, **self._loader_kwargs())

    def fixed_set(self, split: str) -> FixedMaskSet:
        arrays = self.prepared.arrays
        return FixedMaskSet(arrays, arrays.index.split(split), self.cfg.mask, self.cfg.mask.val_samples)

    def val_dataloader(self) -> DataLoader:
        return self.fixed_loader("val")

    def fixed_loader(self, split: str, batch_size: int | None = None) -> DataLoader:
        ds = self.fixed_set(split)
        bs = batch_size or self.cfg.trainer.batch_size
        batches = [list(range(i, min(i + bs, len(ds)))) for i in range(0, len(ds), bs)]
        return DataLoader(ds, batch_size=None, sampler=batches, **self._loader_kwargs())
