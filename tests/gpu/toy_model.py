"""The two-layer model of the training tests (tests/gpu/test_autograd.py on the GPU,
tests/python/test_autograd.py on the cpu target): pre-norm blocks of ALiBi + causal attention,
whose attention function is attnc's kernel or the float32 torch reference below."""
import math

import torch


class Block(torch.nn.Module):
    """Pre-norm attention (ALiBi, causal) + MLP; `attend(q, k, v, slope)` on [b, s, h, d]."""

    def __init__(self, width, heads, attend):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.norm1, self.norm2 = torch.nn.LayerNorm(width), torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.mlp = torch.nn.Sequential(torch.nn.Linear(width, 2 * width), torch.nn.GELU(),
                                       torch.nn.Linear(2 * width, width))
        # ALiBi's geometric slopes, trained with the rest
        self.slope = torch.nn.Parameter(-(2.0 ** -torch.arange(1, heads + 1).float()))

    def forward(self, x):
        b, s, w = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.heads, w // self.heads).unbind(2)
        x = x + self.proj(self.attend(q, k, v, self.slope).reshape(b, s, w))
        return x + self.mlp(self.norm2(x))


class Model(torch.nn.Module):
    def __init__(self, vocab, width, heads, attend):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, width)
        self.blocks = torch.nn.ModuleList(Block(width, heads, attend) for _ in range(2))
        self.head = torch.nn.Linear(width, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def torch_alibi(q, k, v, slope):
    """The float32 torch reference: [b, s, h, d] -> [b, s, h, d]."""
    q, k, v = (t.float().transpose(1, 2) for t in (q, k, v))
    s = q.shape[2]
    pos = torch.arange(s, device=q.device)
    bias = slope.float()[:, None, None] * (pos[None, :] - pos[:, None])
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + bias
    scores = scores.masked_fill(pos[None, :] > pos[:, None], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2)


def train_side_by_side(models, vocab, steps, device, seq=64, batch=32, lag=3, lr=3e-3, seed=1):
    """Trains each model (same initial weights expected) on the same batches of the toy task
    (token t's label is the token `lag` places back); returns each one's loss per step."""
    opts = [torch.optim.AdamW(m.parameters(), lr=lr) for m in models]
    gen = torch.Generator(device).manual_seed(seed)
    curves = [[] for _ in models]
    for _ in range(steps):
        tokens = torch.randint(0, vocab, (batch, seq), device=device, generator=gen)
        labels = torch.roll(tokens, lag, dims=1)[:, lag:].reshape(-1)
        for model, opt, curve in zip(models, opts, curves):
            loss = torch.nn.functional.cross_entropy(model(tokens)[:, lag:].reshape(-1, vocab),
                                                     labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            curve.append(loss.item())
    return [torch.tensor(c) for c in curves]
