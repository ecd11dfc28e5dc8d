"""docs/adding-an-upstream.md, followed to the letter: a toy upstream family added from OUTSIDE
superb (a package plus its installed entry point, written into tmp_path) is built by name, keeps
the contract (all hidden states, exact lengths, downsample rate, padding invariance) and loads
weights from its own checkpoint format through its import module."""
import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from superb.upstream import UndeclaredDownsampleRateError, Upstream, build_upstream, registry
from superb.upstream.family import Variant, register_family

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-an-upstream.md"
PACKAGE, SOURCE, DIST = "superb_toy_family", "toy", "superb_toy_family-0.1"

MODEL_PY = '''
"""Toy family: a strided convolution and a stack of linear layers."""
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn

from superb.upstream import Upstream, UpstreamOutput, conv_output_lengths


@dataclass
class ToyConfig:
    dim: int = 8
    num_layers: int = 2
    kernel: int = 400
    stride: int = 320


class ToyUpstream(Upstream):
    @classmethod
    def rate_for(cls, config: Optional[ToyConfig] = None) -> int:
        return (config or ToyConfig()).stride

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.downsample_rate = self.rate_for(config)
        self.conv = nn.Conv1d(1, config.dim, config.kernel, config.stride)
        self.layers = nn.ModuleList([nn.Linear(config.dim, config.dim) for _ in range(config.num_layers)])
        self.eval()

    @property
    def hidden_sizes(self) -> List[int]:
        return [self.config.dim] * (self.config.num_layers + 1)

    def forward(self, wavs, wav_lens):
        self.check_input(wavs, wav_lens)
        h = self.conv(wavs.unsqueeze(1)).transpose(1, 2)
        states = [h]
        for layer in self.layers:
            h = torch.tanh(layer(h))
            states.append(h)
        lengths = conv_output_lengths(wav_lens, [(self.config.kernel, self.config.stride)])
        return UpstreamOutput(states, lengths)
'''

IMPORT_PY = '''
"""The toy checkpoint format: {'toy_config': {...}, 'weights': {'enc.conv.*', 'enc.layers.N.*'}}."""
from superb.upstream.checkpoint_io import safe_load
from superb.upstream.options import config_from_options
from superb.upstream.state_dict import load_strict, map_keys

from .model import ToyConfig, ToyUpstream

TOY_KEY_MAP = (
    (r"enc\\.conv\\.(weight|bias)", r"conv.\\1"),
    (r"enc\\.layers\\.(\\d+)\\.(weight|bias)", r"layers.\\1.\\2"),
)


def load(path, variant=None, **options):
    obj = safe_load(path)
    config = config_from_options(ToyConfig, ToyConfig(**obj["toy_config"]), options, str(path))
    model = ToyUpstream(config)
    load_strict(model, map_keys(obj["weights"], TOY_KEY_MAP), path)
    return model.eval()
'''

INIT_PY = '''
"""Toy upstream family registered from outside superb."""
from superb.upstream.family import Variant, register_family

from . import import_toy
from .model import ToyConfig, ToyUpstream

register_family("toy", ToyUpstream, [Variant("toy", "toy conv + linear layers", "L+1", ToyConfig())],
                formats=("toy .pt {'toy_config', 'weights'}",), load=import_toy.load)
'''

FILES = {
    f"{PACKAGE}/__init__.py": INIT_PY,
    f"{PACKAGE}/model.py": MODEL_PY,
    f"{PACKAGE}/import_{SOURCE}.py": IMPORT_PY,
    f"{DIST}.dist-info/METADATA": "Metadata-Version: 2.1\nName: superb-toy-family\nVersion: 0.1\n",
    f"{DIST}.dist-info/entry_points.txt": f"[superb.upstreams]\ntoy_family = {PACKAGE}\n",
}


def doc_plugin_files():
    """The file list of the doc's plug-in section (the fenced block after <!-- plugin-files -->)."""
    text = DOC.read_text()
    block = re.search(r"<!-- plugin-files -->\s*```\n(.*?)```", text, re.S)
    assert block, "docs/adding-an-upstream.md lost its <!-- plugin-files --> list"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def generic(path: str) -> str:
    path = path.replace(DIST, "<dist>") if path.startswith(DIST) else path.replace(PACKAGE, "<package>", 1)
    return path.replace(f"import_{SOURCE}.py", "import_<source>.py")


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    for rel, text in FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(textwrap.dedent(text).lstrip())
    registry._load_builtins()
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_toy_modules()  # each test imports (and so registers) the family afresh
    added = registry.load_entry_points(force=True)
    assert "toy" in added, registry.ENTRY_POINT_ERRORS
    yield tmp_path
    _forget_toy_modules()


def _forget_toy_modules():
    for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
        del sys.modules[name]


def test_the_doc_lists_exactly_the_files_a_plugin_family_writes(toy_family):
    written = sorted(str(p.relative_to(toy_family)) for p in toy_family.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert written == sorted(FILES)
    assert sorted(generic(p) for p in written) == sorted(doc_plugin_files())


def test_toy_family_keeps_the_contract(toy_family):
    torch.manual_seed(0)
    model = build_upstream("toy", random_init=True, num_layers=3)
    assert registry.get_spec("toy").downsample_rate == 320 == model.downsample_rate
    assert model.num_layers == 4 and model.hidden_sizes == [8] * 4
    lens = torch.tensor([16000, 9000, 4000])
    wavs = torch.randn(3, 16000)
    wavs[1, 9000:] = 7.0  # padding values must not matter
    wavs[2, 4000:] = -3.0
    with torch.no_grad():
        out = model(wavs, lens)
        assert len(out.hidden_states) == 4 and out.lengths.tolist() == [49, 27, 12]
        for b, n in enumerate(lens.tolist()):  # padded batch vs each utterance alone
            alone = model(wavs[b:b + 1, :n], lens[b:b + 1])
            assert alone.lengths.item() == out.lengths[b].item()
            for h_batch, h_alone in zip(out.hidden_states, alone.hidden_states):
                torch.testing.assert_close(h_batch[b, : out.lengths[b]], h_alone[0])


def test_toy_checkpoint_loads_through_its_import_module(toy_family):
    torch.manual_seed(1)
    ref = build_upstream("toy", random_init=True, dim=6)
    names = {"conv.weight": "enc.conv.weight", "conv.bias": "enc.conv.bias"}
    weights = {names.get(k, "enc." + k): v for k, v in ref.state_dict().items()}
    path = toy_family / "toy.pt"
    torch.save({"toy_config": {"dim": 6, "num_layers": 2}, "weights": weights}, path)
    model = build_upstream("toy", ckpt=path)
    wavs, lens = torch.randn(2, 8000), torch.tensor([8000, 6000])
    with torch.no_grad():
        for a, b in zip(ref(wavs, lens).hidden_states, model(wavs, lens).hidden_states):
            torch.testing.assert_close(a, b)
    del weights["enc.layers.1.bias"]
    torch.save({"toy_config": {"dim": 6, "num_layers": 2}, "weights": weights}, path)
    with pytest.raises(ValueError, match=r"layers\.1\.bias"):
        build_upstream("toy", ckpt=path)


def test_an_upstream_without_a_downsample_rate_is_named():
    class Rateless(Upstream):
        @property
        def hidden_sizes(self):
            return [1]

    with pytest.raises(UndeclaredDownsampleRateError, match=r"Rateless does not state its downsample_rate"):
        Rateless().downsample_rate
    with pytest.raises(UndeclaredDownsampleRateError, match="Rateless"):
        register_family("rateless", Rateless, [Variant("rateless_x", "no rate", "1")])
    assert "rateless_x" not in registry._REGISTRY
