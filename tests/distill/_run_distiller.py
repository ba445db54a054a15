"""A training script for the subprocess tests (resumption after SIGKILL, torchrun).

Tiny teacher (GPT-2 tokenizer, 2 layers, width 32) and tiny student (SentencePiece tokenizer),
as in ``test_distiller.py``. Rank 0 writes ``<out>/student.safetensors``,
``<out>/byte_head.safetensors`` and ``<out>/history.json``.

    python _run_distiller.py OUT CACHE [--checkpoint-dir D] [--kill-at STEP] [--accum N]
                                        [--dropout P] [--steps N]
"""

import argparse
import hashlib
import json
import os
import signal

import torch
from safetensors.torch import save_model
from transformers import GPT2Config, GPT2LMHeadModel

from sklearn_lts._models import gpt2_tokenizer, sentencepiece_tokenizer
from sklearn_lts.distill import ByteDistiller
from tests.distill.test_distiller import TEXTS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("cache")
    ap.add_argument("--checkpoint-dir")
    ap.add_argument("--kill-at", type=int)
    ap.add_argument("--accum", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tok = gpt2_tokenizer()
    torch.manual_seed(1)
    teacher = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=2, n_embd=32, n_head=2,
                                         n_positions=256)).eval()
    stok = sentencepiece_tokenizer()
    p = args.dropout
    cfg = GPT2Config(vocab_size=len(stok), n_layer=2, n_embd=32, n_head=2, n_positions=256,
                     bos_token_id=stok.bos_token_id, eos_token_id=stok.eos_token_id,
                     resid_pdrop=p, embd_pdrop=p, attn_pdrop=p)

    trained = []  # the steps this process ran (a resumed run starts after its checkpoint)

    def kill(record):  # as if the machine went away right after this step
        trained.append(record.step)
        if record.step == args.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    bd = ByteDistiller(
        teacher=(teacher, tok), student=(cfg, stok), max_steps=args.steps, batch_size=4,
        max_length=16, learning_rate=3e-3, random_state=0, device="cpu", cache_dir=args.cache,
        byte_method="boundary", gradient_accumulation_steps=args.accum, verbose=0,
        checkpoint_dir=args.checkpoint_dir, checkpoint_every=2,
        callbacks=[kill],
    )
    bd.fit(TEXTS, eval_X=TEXTS[:2], eval_every=4)
    rank = int(os.environ.get("RANK", "0"))
    os.makedirs(args.out, exist_ok=True)
    digest = hashlib.sha256()
    for module in (bd.student_, bd.byte_head_):
        for v in module.state_dict().values():
            digest.update(v.detach().contiguous().numpy().tobytes())
    with open(os.path.join(args.out, f"rank{rank}.json"), "w") as f:
        json.dump({"world_size": int(os.environ.get("WORLD_SIZE", "1")), "trained": trained,
                   "weights_sha256": digest.hexdigest()}, f)
    if rank == 0:
        save_model(bd.student_, os.path.join(args.out, "student.safetensors"))
        save_model(bd.byte_head_, os.path.join(args.out, "byte_head.safetensors"))
        history = [{k: v for k, v in h.items() if k != "time"} for h in bd.history_]
        with open(os.path.join(args.out, "history.json"), "w") as f:
            json.dump({"history": history, "curve": bd.eval_curve_.tolist()}, f)


if __name__ == "__main__":
    main()
