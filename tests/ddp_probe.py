"""A callback the DDP test adds on the command line: records each rank's crops and final weights."""

import hashlib
import json
import os
from pathlib import Path

import lightning as L


class CropProbe(L.Callback):
    def __init__(self):
        self.crops = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.crops += [[int(p), int(o)] for p, o in zip(batch["piece"], batch["offset"])]

    def on_fit_end(self, trainer, pl_module):
        digest = hashlib.sha256()
        for name, p in sorted(pl_module.generator.state_dict().items()):
            digest.update(name.encode())
            digest.update(p.detach().cpu().numpy().tobytes())
        out = Path(os.environ["WAVEFORGE_DDP_PROBE"]) / f"rank{trainer.global_rank}.json"
        out.write_text(json.dumps({"rank": trainer.global_rank, "world": trainer.world_size, "crops": self.crops, "weights": digest.hexdigest()}))
