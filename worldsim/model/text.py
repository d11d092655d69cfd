"""Text conditioning: a word tokenizer built from the training captions and a small transformer trained with the DiT.

Works offline with no downloaded weights (the default). `HFTextEncoder` instead wraps a frozen pretrained encoder
loaded from a local folder through `transformers` (`local_files_only=True`: nothing is downloaded).
Both return per-token features (B, L, D) with a padding mask, and a pooled vector (B, D).
"""

from __future__ import annotations

import re
from collections import Counter

import torch
from torch import nn

from worldsim.errors import InputError

PAD, UNK, CLS = 0, 1, 2
SPECIALS = ["<pad>", "<unk>", "<cls>"]
_WORD = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class Tokenizer:
    """Lower-case words and punctuation; ids 0-2 are <pad>, <unk>, <cls>. The vocabulary travels in checkpoints."""

    def __init__(self, vocab: list[str], max_len: int = 96) -> None:
        if vocab[: len(SPECIALS)] != SPECIALS:
            raise InputError("a tokenizer vocabulary must start with <pad>, <unk>, <cls>")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = int(max_len)

    @classmethod
    def build(cls, texts: list[str], max_vocab: int = 8192, max_len: int = 96) -> Tokenizer:
        """Most frequent words first (ties alphabetical, so the same captions give the same vocabulary)."""
        counts = Counter(w for t in texts for w in words(t))
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max_vocab - len(SPECIALS)]
        return cls(SPECIALS + ranked, max_len)

    def known(self, text: str) -> int:
        """How many words of `text` are in the vocabulary."""
        return sum(w in self.index for w in words(text))

    def __call__(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, L) int64 starting with <cls>, and mask (B, L) bool (True = a real token)."""
        rows = [[CLS] + [self.index.get(w, UNK) for w in words(t)][: self.max_len - 1] for t in texts]
        length = max(len(r) for r in rows)
        ids = torch.full((len(rows), length), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != PAD


class TextEncoder(nn.Module):
    """Token embeddings + learned positions + a pre-norm transformer; pooled = the <cls> token's output."""

    def __init__(self, vocab_size: int, width: int = 128, depth: int = 2, heads: int = 4, max_len: int = 96) -> None:
        super().__init__()
        self.width = width
        self.embed = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.zeros(max_len, width))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(ids) + self.pos[: ids.shape[1]]
        h = self.norm(self.blocks(h, src_key_padding_mask=~mask))
        return h, h[:, 0]


class HFTextEncoder(nn.Module):
    """A frozen pretrained encoder from a local folder (`transformers`, `local_files_only=True`)."""

    def __init__(self, path: str, max_len: int = 96) -> None:
        super().__init__()
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError as err:
            raise InputError('text.encoder=hf needs transformers: pip install "worldsim[hf]"') from err
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        except OSError as err:
            raise InputError(f"text.path={path} is not a local transformers model folder: {err}") from err
        self.model.requires_grad_(False)
        self.width = int(self.model.config.hidden_size)
        self.max_len = max_len

    def encode_texts(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
        with torch.no_grad():
            h = self.model(**{k: v.to(device) for k, v in tok.items()}).last_hidden_state
        mask = tok["attention_mask"].to(device).bool()
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return h, mask, pooled
