from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def random_csr(rng: np.random.Generator, rows: int, cols: int, density: float) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=density, format="csr", random_state=rng, dtype=np.float32)
    m.data[:] = 1.0
    m.sort_indices()
    return m


@pytest.fixture(scope="session")
def tiny_data():
    import personae

    return personae.synthetic(n_users=400, n_items=150, n_tastes=5, mean_items=15, seed=3)


@pytest.fixture(scope="session")
def tiny_model(tiny_data):
    """A Mult-VAE trained for a few epochs on a tiny synthetic set (shared across tests)."""
    import personae

    est = personae.MultVAE(hidden=32, latent=8, epochs=3, batch_size=100, device="cpu", seed=0)
    return est.fit(tiny_data.interactions, show_progress=False)
