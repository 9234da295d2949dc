import pytest
import torch

from operators.features import INPUT_SEQUENCE_LENGTH, Normalization
from operators.fno import FNO, SpectralConv, regular_grid
from operators.giorom import DenseQuery, GIOROMConfig, GIOROMNet, sample_sparse
from operators.simulator import LearnedSimulator
from operators.train import train
from toy_data import write_toy_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def _stats(dim=2):
    return Normalization(torch.zeros(dim), torch.full((dim,), 0.01), torch.zeros(dim), torch.full((dim,), 1e-3))


def _small_cfg(**kw):
    base = dict(latent=16, mp_before=1, mp_after=1, grid_size=8, modes=3, sparse_fraction=0.3)
    base.update(kw)
    return GIOROMConfig(**base)


@pytest.mark.parametrize("dim", [2, 3])
def test_spectral_conv_shape_and_translation_equivariance(dim):
    conv = SpectralConv(4, 5, modes=3, dim=dim)
    v = torch.randn((2, 4) + (8,) * dim)
    out = conv(v)
    assert out.shape == (2, 5) + (8,) * dim
    # circular shifts commute with a Fourier multiplier
    shifted = conv(torch.roll(v, shifts=3, dims=2))
    torch.testing.assert_close(shifted, torch.roll(out, shifts=3, dims=2), atol=1e-5, rtol=1e-4)


def test_spectral_conv_keeps_only_low_modes():
    conv = SpectralConv(1, 1, modes=2, dim=2)
    x = torch.arange(16.0)
    high = torch.cos(2 * torch.pi * 6 * x / 16)[None, None, :, None].expand(1, 1, 16, 16).contiguous()
    torch.testing.assert_close(conv(high), torch.zeros_like(high), atol=1e-5, rtol=0)
    assert FNO(4, 3, 2)(torch.randn(1, 4, 8, 8)).shape == (1, 4, 8, 8)


def test_regular_grid():
    g = regular_grid(torch.tensor([[0.0, 1.0], [0.0, 2.0]]), 4)
    assert g.shape == (16, 2)
    torch.testing.assert_close(g.min(0).values, torch.tensor([0.125, 0.25]))


@pytest.mark.parametrize("dim", [2, 3])
def test_giorom_net_shapes_batches_and_permutation_equivariance(dim):
    bounds = [[0.0, 1.0]] * dim
    net = GIOROMNet(LearnedSimulator.num_node_features(dim), dim + 1, dim, bounds,
                    _small_cfg(grid_size=6 if dim == 3 else 8))
    sim = LearnedSimulator(net, dim, 0.3, bounds, _stats(dim))
    seq = torch.rand(40, INPUT_SEQUENCE_LENGTH, dim)
    types = torch.full((40,), 5)
    out = sim(seq, types)
    assert out.shape == (40, dim)
    perm = torch.randperm(40)
    torch.testing.assert_close(sim(seq[perm], types[perm]), out[perm], atol=1e-4, rtol=1e-4)
    # two copies in one batch give the same answer as each alone
    batch = torch.arange(2).repeat_interleave(40)
    both = sim(torch.cat([seq, seq]), torch.cat([types, types]), batch)
    torch.testing.assert_close(both[:40], out, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(both[40:], out, atol=1e-4, rtol=1e-4)


def test_dense_query_reproduces_constant_and_identity():
    g = torch.Generator().manual_seed(0)
    sparse = torch.rand(50, 2, generator=g)
    dense = torch.rand(2000, 2, generator=g)
    q = DenseQuery(2, k=6, scale=0.05)
    shift = torch.tensor([0.03, -0.2])
    out = q(sparse, sparse + shift, dense)  # rigid translation: constant displacement
    torch.testing.assert_close(out, dense + shift, atol=1e-6, rtol=0)
    plan = q.plan(sparse, dense)
    torch.testing.assert_close(q.apply(plan, torch.zeros(50, 2)), torch.zeros(2000, 2))


def test_affine_dense_query_carries_a_rotation_and_stretch_exactly():
    """The affine query moves points between and beyond the sparse ones with the sparse motion's
    deformation; the displacement-only kernel lags a rotation at every point off the sparse ones."""
    g = torch.Generator().manual_seed(2)
    sparse = torch.rand(120, 3, generator=g)
    dense = torch.rand(3000, 3, generator=g) * 1.1 - 0.05  # also a little outside the sparse hull
    angle = torch.tensor(0.4)
    c, s_ = torch.cos(angle), torch.sin(angle)
    A = torch.tensor([[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]]) @ torch.diag(torch.tensor([1.2, 0.9, 1.0]))
    t = torch.tensor([0.1, -0.05, 0.2])

    def move(p):
        return p @ A.T + t

    affine = DenseQuery(3, k=8, scale=0.1, affine=True)
    plain = DenseQuery(3, k=8, scale=0.1)
    plain.load_state_dict(affine.state_dict())  # the same kernel: only the carried motion differs
    exact = move(dense)
    err_affine = (affine(sparse, move(sparse), dense) - exact).norm(dim=-1).max()
    err_plain = (plain(sparse, move(sparse), dense) - exact).norm(dim=-1).max()
    assert float(err_affine) < 1e-4
    assert float(err_plain) > 100 * float(err_affine)
    with pytest.raises(ValueError, match="3-D"):
        DenseQuery(2, affine=True)
    with pytest.raises(ValueError, match="query_affine"):
        GIOROMConfig(query_affine=1)


def test_dense_query_fit_smooth_deformation():
    """Trained on a smooth deformation, the query beats its initial interpolation."""
    g = torch.Generator().manual_seed(1)
    ref = torch.rand(800, 2, generator=g)
    idx = sample_sparse(ref, 0.15, "fps", generator=g)

    def deform(p):
        return p + 0.05 * torch.stack([torch.sin(3 * p[:, 1]), p[:, 0] ** 2], -1)

    q = DenseQuery(2, k=8, scale=0.05)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    errs = []
    for _ in range(40):
        err = ((q(ref[idx], deform(ref[idx]), ref) - deform(ref)) ** 2).mean()
        opt.zero_grad()
        err.backward()
        opt.step()
        errs.append(err.item())
    assert errs[-1] < 0.7 * errs[0]


def test_sample_sparse():
    pos = torch.rand(100, 2)
    for sampler in ("fps", "random"):
        idx = sample_sparse(pos, 0.1, sampler, generator=torch.Generator().manual_seed(0))
        assert idx.shape == (10,) and len(idx.unique()) == 10
    with pytest.raises(ValueError, match="sampler must be"):
        sample_sparse(pos, 0.1, "grid")
    with pytest.raises(ValueError, match="fraction must be in"):
        sample_sparse(pos, 0.0)
    with pytest.raises(ValueError, match="N >= 1"):
        sample_sparse(pos[:0], 0.5)


def test_config_errors():
    with pytest.raises(ValueError, match="sparse_fraction must be in"):
        GIOROMConfig(sparse_fraction=1.5)
    with pytest.raises(ValueError, match="sampler must be"):
        GIOROMConfig(sampler="poisson")
    with pytest.raises(ValueError, match="grid_size >= 2"):
        GIOROMConfig(grid_size=1)
    with pytest.raises(ValueError, match="dim must be 2 or 3"):
        SpectralConv(1, 1, 2, dim=1)
    with pytest.raises(ValueError, match="modes must be >= 1"):
        SpectralConv(1, 1, 0, dim=2)
    with pytest.raises(ValueError, match="v must be"):
        SpectralConv(2, 2, 2, dim=2)(torch.randn(1, 3, 8, 8))
    q = DenseQuery(2)
    with pytest.raises(ValueError, match="k must be >= 1"):
        DenseQuery(2, k=0)
    with pytest.raises(ValueError, match="query_reference must be"):
        q.plan(torch.rand(5, 2), torch.rand(0, 2))
    with pytest.raises(ValueError, match="sparse_reference contains NaN"):
        q.plan(torch.tensor([[float("nan"), 0.0]]), torch.rand(3, 2))
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        q.plan([[0.0, 0.0]], torch.rand(3, 2))
    plan = q.plan(torch.rand(5, 2), torch.rand(3, 2))
    with pytest.raises(ValueError, match=r"sparse_displacement must be \[5, 2\]"):
        q.apply(plan, torch.zeros(4, 2))


def test_giorom_loss_decreases(tmp_path):
    data = write_toy_dataset(tmp_path / "data", n=60, drag=0.1, repulsion=0.0)
    res = train("giorom", data, tmp_path / "run", 40, progress=False, log_every=5, lr=3e-3, lr_final=3e-3,
                noise_std=1e-5,
                model_config={"latent": 16, "mp_before": 1, "mp_after": 1, "grid_size": 8, "modes": 3,
                              "sparse_fraction": 0.3})
    hist = torch.load(res.checkpoint, weights_only=False)["history"]
    first = sum(l for _, l in hist[:2]) / 2
    last = sum(l for _, l in hist[-2:]) / 2
    assert last < 0.6 * first
