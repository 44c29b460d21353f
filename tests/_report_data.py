"""A small synthetic recording with images for the report tests (shared by the browser and non-browser tests)."""
import numpy as np

from interpretdl_noise import save_training_dynamics


def noisy_recording(path, n=120, epochs=12, n_classes=4, n_flipped=15, seed=0, side=8, label_flip=True):
    """Save a recording whose flipped samples never learn their given label; return (path, info).

    Clean samples' assigned-label probability rises to ~0.95 at a per-sample speed; a flipped sample keeps a
    low one while its true class (channel 1) rises. ``info``: ``given``, ``true``, ``flips`` (N,), ``images``
    (N, side, side) uint8, one brightness pattern per true class so thumbnails differ.
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_classes, n)
    flips = np.zeros(n, bool)
    flips[rng.choice(n, n_flipped, replace=False)] = True
    given = true.copy()
    given[flips] = (true[flips] + rng.integers(1, n_classes, n_flipped)) % n_classes
    t = np.linspace(0, 1, epochs)[None, :]
    speed = rng.uniform(3, 9, (n, 1))
    rising = 1 / n_classes + (0.95 - 1 / n_classes) * (1 - np.exp(-speed * t))
    p_given = np.where(flips[:, None], rng.uniform(0.02, 0.2, (n, epochs)), rising)
    p_true = np.where(flips[:, None], rising * (1 - p_given), 0.0)
    rest = np.clip(1 - p_given - p_true, 0, None)
    others = rest[:, :, None] * rng.dirichlet(np.ones(n_classes - 1), size=(n, epochs))
    td = np.empty((n, epochs, n_classes))
    labels = np.empty((n, n_classes), np.int16)
    for i in range(n):
        rest_classes = [c for c in range(n_classes) if c != given[i]]
        probs = np.zeros((epochs, n_classes))
        probs[:, given[i]] = p_given[i]
        probs[:, rest_classes] = others[i]
        if flips[i]:
            probs[:, true[i]] += p_true[i]
        order = [given[i]] + sorted(rest_classes, key=lambda c: -probs[:, c].mean())
        td[i] = probs[:, order]
        labels[i] = order
    losses = -np.log(np.maximum(td[:, :, 0], 1e-6)).astype(np.float32)
    images = np.zeros((n, side, side), np.uint8)
    for i in range(n):
        images[i, :, true[i] * side // n_classes:(true[i] + 1) * side // n_classes] = 255
        images[i] = np.maximum(images[i], rng.integers(0, 60, (side, side)).astype(np.uint8))
    save_training_dynamics(path, td, labels, label_flip=flips if label_flip else None, losses=losses,
                           sample_ids=np.arange(n))
    return path, {"given": given, "true": true, "flips": flips, "images": images}
