"""The feature store (superb.benchmark.feature_store): exact fp32 / rounded fp16, bf16 round trips,
keys, corruption handling, temporary files, the budget, concurrent writers and readers, a writer
killed mid-write, info / clear and the `superb cache` command."""
from __future__ import annotations

import io
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest
import torch

from superb.benchmark import cli
from superb.benchmark import feature_store as fs
from superb.benchmark.feature_store import DTYPES, FeatureStore, StoreError, audio_key, default_store_dir

IDENT = {"upstream": {"name": "wavlm_base_plus", "sha256": "ab" * 32}, "layers": list(range(13)),
         "kind": "frames", "options": {"normalize": False}}


def mixed(seed: int):
    """Tensors of mixed shapes and sizes (frames x dim per layer, a time-mean, a scalar, an empty one)."""
    g = torch.Generator().manual_seed(seed)
    t = 3 + seed % 7
    return [*(torch.randn(t, 24, generator=g) * 3 for _ in range(4)), torch.randn(24, generator=g),
            torch.tensor(1.5), torch.zeros(0, 24), torch.randn(2, 3, 4, generator=g)]


def rounded(x: torch.Tensor, dtype: str) -> torch.Tensor:
    return {"fp32": x.float(), "fp16": x.half().float(), "bf16": x.bfloat16().float()}[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path, dtype):
    ns = FeatureStore(tmp_path / "store").namespace(IDENT, dtype)
    xs = mixed(3)
    assert ns.get("ab12") is None and "ab12" not in ns
    assert ns.put("ab12", xs) is True and "ab12" in ns
    ys = ns.get("ab12")
    assert len(ys) == len(xs)
    for x, y in zip(xs, ys):
        assert y.dtype == torch.float32 and y.device.type == "cpu" and y.shape == x.shape
        assert torch.equal(y, rounded(x, dtype))  # exactly the value in the storage precision
        if dtype != "fp32" and x.numel():
            tol = {"fp16": 1e-3, "bf16": 8e-3}[dtype]
            assert torch.allclose(y, x, rtol=tol, atol=tol * 1e-2)
    ys[0].add_(100.0)  # the caller's tensors are private
    assert torch.equal(ns.get("ab12")[0], rounded(xs[0], dtype))
    assert ns.stats() == {"hits": 2, "misses": 1, "writes": 1, "refused": 0, "corrupt": 0}
    # a file per item, in the fan-out folder of its first two characters
    assert (ns.dir / "ab" / "ab12.sfe").is_file()
    # an empty list and a non-contiguous / requires_grad tensor
    assert ns.put("cd", []) and ns.get("cd") == []
    w = torch.randn(5, 6, requires_grad=True)
    assert ns.put("ef", [w.t(), w[::2]])
    got = ns.get("ef")
    assert torch.equal(got[0], rounded(w.detach().t(), dtype)) and torch.equal(got[1], rounded(w.detach()[::2], dtype))


def test_fp32_large_values_exact(tmp_path):
    ns = FeatureStore(tmp_path).namespace({"u": 1})
    x = torch.tensor([1e30, -1e-30, float("inf"), 0.1, 3.4e38])
    ns.put("xx", [x])
    assert torch.equal(ns.get("xx")[0], x)


def test_audio_key(tmp_path):
    wav = tmp_path / "a.wav"
    wav.write_bytes(b"RIFF" + b"\0" * 100)
    k = audio_key(wav, 0, 16000)
    assert len(k) == 64 and k == audio_key(str(wav), 0, 16000)
    assert k == audio_key(tmp_path / "." / "a.wav", 0, 16000)  # the resolved path
    assert k != audio_key(wav, 1, 16000) and k != audio_key(wav, 0, 8000)
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # touched
    k2 = audio_key(wav, 0, 16000)
    assert k2 != k
    wav.write_bytes(b"RIFF" + b"\1" * 101)  # rewritten (another size)
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert audio_key(wav, 0, 16000) not in (k, k2)
    other = tmp_path / "b.wav"
    other.write_bytes(b"RIFF" + b"\1" * 101)
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert audio_key(other, 0, 16000) != audio_key(wav, 0, 16000)  # same bytes, another file
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        audio_key(tmp_path / "missing.wav", 0, 10)


def test_namespace_keys_and_identity(tmp_path):
    store = FeatureStore(tmp_path / "s")
    assert not store.root.exists()  # created lazily
    a = store.namespace(IDENT)
    assert len(a.key) == 32 and a.dir == store.root / a.key and a.dtype == "fp32"
    assert store.namespace(dict(reversed(list(IDENT.items())))).key == a.key  # key order does not matter
    assert store.namespace({**IDENT, "layers": [12]}).key != a.key
    assert store.namespace({**IDENT, "upstream": {"name": "wavlm_base_plus", "sha256": "cd" * 32}}).key != a.key
    assert len({store.namespace(IDENT, d).key for d in DTYPES}) == 3
    doc = json.loads((a.dir / "identity.json").read_text())
    assert doc == {"store_version": fs.STORE_VERSION, "identity": IDENT, "dtype": "fp32", "key": a.key}
    assert a.identity == IDENT
    with pytest.raises(StoreError, match="dtype"):
        store.namespace(IDENT, "int8")
    with pytest.raises(StoreError, match="JSON-able"):
        store.namespace({"x": object()})
    # an identity.json with other content is an error naming it
    (a.dir / "identity.json").write_text(json.dumps({**doc, "identity": {"other": 1}}))
    with pytest.raises(StoreError, match="identity.json"):
        store.namespace(IDENT)
    for bad in ("", ".hidden", "a/b", "../x", "a b", 5):
        with pytest.raises(StoreError, match="item"):
            store.namespace({"u": 2}).put(bad, [torch.zeros(1)])


def test_default_store_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERB_CACHE_DIR", str(tmp_path / "c"))
    assert default_store_dir() == tmp_path / "c" / "features"
    assert default_store_dir(tmp_path / "d") == tmp_path / "d" / "features"


@pytest.mark.parametrize("damage", ["truncate", "magic", "header", "extend", "empty"])
def test_corrupt_entry_is_warned_removed_and_not_served(tmp_path, damage):
    ns = FeatureStore(tmp_path).namespace(IDENT)
    ns.put("ab", mixed(1))
    path = ns.dir / "ab" / "ab.sfe"
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[:-5], "magic": b"X" + raw[1:], "header": raw[:20] + b"}" + raw[21:],
                      "extend": raw + b"\0", "empty": b""}[damage])
    with pytest.warns(RuntimeWarning, match=str(path)):
        assert ns.get("ab") is None
    assert not path.exists() and ns.corrupt == 1 and ns.misses == 1
    assert ns.put("ab", mixed(1)) and ns.get("ab") is not None  # recomputed and stored again


def test_entry_of_another_item_or_dtype_is_not_served(tmp_path):
    store = FeatureStore(tmp_path)
    ns = store.namespace(IDENT)
    ns.put("ab1", mixed(1))
    os.replace(ns.dir / "ab" / "ab1.sfe", ns.dir / "ab" / "ab2.sfe")
    with pytest.warns(RuntimeWarning, match="ab2.sfe"):
        assert ns.get("ab2") is None


def test_stray_tmp_file_is_never_served(tmp_path):
    store = FeatureStore(tmp_path)
    ns = store.namespace(IDENT)
    ns.put("ab", mixed(2))
    entry = ns.dir / "ab" / "ab.sfe"
    tmp = ns.dir / "cd" / ".cd.sfe.k3j4.tmp"  # a killed writer's complete-looking tmp file
    tmp.parent.mkdir()
    tmp.write_bytes(entry.read_bytes().replace(b'"ab"', b'"cd"'))
    assert ns.get("cd") is None and "cd" not in ns
    info = store.info()[0]
    assert info["entries"] == 1 and info["bytes"] == entry.stat().st_size + (ns.dir / "identity.json").stat().st_size
    # the size scan deletes temporary files once they are stale, keeps fresh ones (a live writer's)
    FeatureStore(tmp_path, max_bytes=10**9).namespace(IDENT).put("ef", [torch.zeros(1)])
    assert tmp.exists()
    old = time.time() - fs.STALE_TMP_SECONDS - 10
    os.utime(tmp, (old, old))
    FeatureStore(tmp_path, max_bytes=10**9).namespace(IDENT).put("ef", [torch.zeros(1)])
    assert not tmp.exists()


def test_budget_refuses_when_full(tmp_path):
    x = [torch.randn(100, 10)]
    probe = FeatureStore(tmp_path / "probe").namespace(IDENT)
    probe.put("aa", x)
    entry = (probe.dir / "aa" / "aa.sfe").stat().st_size
    ident = (probe.dir / "identity.json").stat().st_size
    store = FeatureStore(tmp_path / "s", max_bytes=ident + 2 * entry)
    ns = store.namespace(IDENT)
    assert ns.put("a1", x) and ns.put("a2", x)
    assert ns.put("a3", x) is False and "a3" not in ns and not (ns.dir / "a3").exists()
    assert ns.stats()["refused"] == 1 and ns.stats()["writes"] == 2
    assert ns.put("a1", x) is True  # replacing an entry of the same size fits
    assert store.total_bytes() == ident + 2 * entry <= store.max_bytes
    # another process (a new store object) scans what is there: full from the start
    ns2 = FeatureStore(tmp_path / "s", max_bytes=ident + 2 * entry).namespace(IDENT)
    assert ns2.put("b1", [torch.zeros(1)]) is False and ns2.refused == 1
    assert ns2.get("a2") is not None  # a full store still serves what it has
    # no budget: unbounded
    assert FeatureStore(tmp_path / "s").namespace(IDENT).put("b1", x)


def test_info_and_clear(tmp_path):
    store = FeatureStore(tmp_path)
    a = store.namespace(IDENT)
    b = store.namespace({"upstream": "hubert_base", "layers": [3], "kind": "mean"}, "fp16")
    for i in range(3):
        a.put(f"a{i}", mixed(i))
    b.put("b0", [torch.randn(768)])
    infos = {ns["key"]: ns for ns in store.info()}
    assert set(infos) == {a.key, b.key}
    assert infos[a.key]["entries"] == 3 and infos[b.key]["entries"] == 1
    assert infos[a.key]["identity"] == IDENT and infos[b.key]["dtype"] == "fp16"
    on_disk = sum(p.stat().st_size for p in a.dir.rglob("*") if p.is_file())
    assert infos[a.key]["bytes"] == on_disk and infos[a.key]["last_used"] <= time.time()
    assert store.total_bytes() == on_disk + infos[b.key]["bytes"]
    with pytest.raises(StoreError, match="no namespace"):
        store.clear(["ffff"])
    assert store.clear([]) == (0, 0)
    assert store.clear([b.key[:6]]) == (1, infos[b.key]["bytes"])  # a unique prefix is enough
    assert [ns["key"] for ns in store.info()] == [a.key]
    assert store.clear() == (1, on_disk)
    assert store.info() == [] and store.total_bytes() == 0
    assert [p.name for p in tmp_path.iterdir()] == []
    assert FeatureStore(tmp_path / "never").info() == [] and FeatureStore(tmp_path / "never").clear() == (0, 0)


def test_clear_while_in_use_gives_misses_then_recreates(tmp_path):
    store = FeatureStore(tmp_path)
    ns = store.namespace(IDENT)
    ns.put("ab", mixed(0))
    FeatureStore(tmp_path).clear()  # `superb cache clear` from elsewhere
    assert ns.get("ab") is None
    assert ns.put("ab", mixed(0)) and ns.get("ab") is not None
    assert json.loads((ns.dir / "identity.json").read_text())["identity"] == IDENT
    assert store.info()[0]["entries"] == 1


# -- concurrency -------------------------------------------------------------------------------
ITEMS = [f"{i:02x}{i * 7919:08x}" for i in range(24)]


def _values(item: str):
    g = torch.Generator().manual_seed(int(item, 16) % (2 ** 31))
    n = 1 + int(item[:2], 16) % 5
    return [torch.randn(40 + n, 64, generator=g) for _ in range(n)] + [torch.randn(64, generator=g)]


def _worker(root: str, seed: int, rounds: int, queue) -> None:
    torch.set_num_threads(1)
    import random

    ns = FeatureStore(root).namespace(IDENT)
    rng = random.Random(seed)
    hits = bad = 0
    for _ in range(rounds):
        for item in rng.sample(ITEMS, len(ITEMS)):
            got = ns.get(item)
            if got is not None:
                hits += 1
                want = _values(item)
                bad += len(got) != len(want) or not all(torch.equal(a, b) for a, b in zip(got, want))
            ns.put(item, _values(item))
    queue.put((hits, bad, ns.corrupt))


def test_concurrent_writers_and_readers(tmp_path):
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), s, 6, queue)) for s in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(bad == 0 and corrupt == 0 for _, bad, corrupt in results), results
    assert sum(h for h, _, _ in results) > 0
    ns = FeatureStore(tmp_path).namespace(IDENT)
    assert all(all(torch.equal(a, b) for a, b in zip(ns.get(i), _values(i))) for i in ITEMS)
    assert not [p for p in tmp_path.rglob("*.tmp")]


KILLED_WRITER = textwrap.dedent("""
    import sys, torch
    from superb.benchmark.feature_store import FeatureStore
    ns = FeatureStore(sys.argv[1]).namespace({"u": "killed"})
    x = [torch.full((256, 1024), float(k)) for k in range(4)]  # 4 MB an entry
    for i in range(100000):
        ns.put(f"{i % 256:02x}{i:06d}", x)
        if i == 3:
            print("writing", flush=True)
""")


def test_writer_killed_mid_put_leaves_no_bad_entry(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(0.4)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    ns = FeatureStore(tmp_path).namespace({"u": "killed"})
    entries = list(ns.dir.rglob("*.sfe"))
    assert len(entries) >= 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for e in entries:
            got = ns.get(e.stem)
            assert got is not None and [float(t[0, 0]) for t in got] == [0.0, 1.0, 2.0, 3.0]
    assert ns.corrupt == 0
    info = FeatureStore(tmp_path).info()[0]
    assert info["entries"] == len(entries)  # a leftover .tmp is not counted


# -- command line ------------------------------------------------------------------------------
def test_cli_info_and_clear(tmp_path, capsys, monkeypatch):
    store = FeatureStore(default_store_dir(tmp_path))
    a = store.namespace(IDENT, "bf16")
    a.put("ab", mixed(0))
    b = store.namespace({"upstream": "hubert_base", "layers": [3], "kind": "mean"})
    assert cli.main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(a.key))
    assert "wavlm_base_plus" in row and "0-12" in row and "frames" in row and "bf16" in row
    assert b.key in out and "hubert_base" in out and "total: 2 namespaces, 1 entries" in out
    assert f"store: {store.root}" in out

    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: needs --yes
    assert cli.main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--yes" in err and len(err.strip().splitlines()) == 1
    assert len(store.info()) == 2
    assert cli.main(["cache", "clear", "--cache-dir", str(tmp_path), "--key", b.key, "--yes"]) == 0
    assert "removed 1 namespace," in capsys.readouterr().out
    assert [ns["key"] for ns in store.info()] == [a.key]
    assert cli.main(["cache", "clear", "--cache-dir", str(tmp_path), "--key", "0000", "--yes"]) == 2
    assert "no namespace '0000'" in capsys.readouterr().err
    assert cli.main(["cache", "clear", "--cache-dir", str(tmp_path), "--yes"]) == 0
    assert cli.main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    assert "empty" in capsys.readouterr().out


def test_cache_info_imports_no_torch(tmp_path):
    code = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from superb.benchmark.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["cache", "info", "--cache-dir", {str(tmp_path)!r}]) == 0
        print(json.dumps([m for m in ("torch", "numpy") if m in sys.modules]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
