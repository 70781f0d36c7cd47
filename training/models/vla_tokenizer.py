"""Tokenizers for the VLA's instructions: the LLM's own (from_pretrained), or a tiny offline one.

The tiny tokenizer is a byte-level BPE (the `tokenizers` package) trained at runtime on a fixed
corpus of robot instructions: any text encodes (bytes, never an unknown token), and the task
instructions come out short. Its JSON travels inside each checkpoint, so a reloaded model reads
text exactly as it was trained to.
"""

from __future__ import annotations

from pathlib import Path

PAD = "<pad>"
EOS = "<eos>"
_CORPUS = [
    "Pick up the red cube with the right arm and hand it over to the left arm.",
    "Pick up the red peg and the blue socket, and insert the peg into the socket.",
    "Push the T-shaped block onto the target.",
    "push the gray T block so that it covers the green T target",
    "move the arm left right up down forward backward, open and close the gripper",
    "grasp lift place transfer insert stack the object block cube peg socket on the table",
]
TINY_VOCAB_SIZE = 512


def build_tiny_tokenizer(vocab_size: int = TINY_VOCAB_SIZE):
    """A PreTrainedTokenizerFast around a small byte-level BPE (deterministic for a given corpus)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return wrap_tokenizer_json(tok.to_str())


def wrap_tokenizer_json(text: str):
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(text), pad_token=PAD, eos_token=EOS)


def load_pretrained_tokenizer(name: str):
    """The LLM's tokenizer from a local directory or the hub cache; a clear error when absent."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"no tokenizer for {name!r} in {_where(name)}: {_first_line(exc)}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _where(name: str) -> str:
    return (
        f"the local directory {name}"
        if Path(name).exists() or name.startswith(("/", "."))
        else "a local directory or the Hugging Face hub cache (offline here: HF_HUB_OFFLINE=1)"
    )


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
