"""The choices and limits of lstmae's parameters. Torch-free, so the CLI's --help
and the model-file checks can read them without importing torch.

The limits are read by the parameter checks of `Detector.fit` and by the
model-file loader: a model file is untrusted input, so it may not claim a shape
that fit would have refused (a window of a billion rows, a hidden size whose
weights would not fit in memory).
"""

LOSSES = ("mse", "l1")  # what training minimises
ERRORS = ("mae+peak", "mae", "mse")  # how a window's error is measured when scoring
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")
THRESHOLD_METHODS = ("max", "quantile", "pot", "sigma")
FILL_METHODS = ("ffill", "interpolate", "drop")

MAX_WINDOW = 4096  # rows per window; `--window auto` stays within 8..256
MAX_HIDDEN = 4096
MAX_LATENT = 4096
MAX_LAYERS = 16
MAX_COLUMNS = 10_000
# Weights of encoder + decoder + heads: 50M parameters are 200 MB of float32, far
# beyond any model that trains in reasonable time on the machines lstmae runs on.
MAX_PARAMETERS = 50_000_000
MAX_BATCH_SIZE = 1 << 16
MAX_EPOCHS = 1_000_000
# Standardised values are capped here (lstmae.windows), so no window error, held-out
# error or useful threshold is larger; raw values beyond MAX_VALUE are refused on input.
MAX_ERROR = 1e35
MAX_VALUE = 3.4028234663852886e38 / 16  # float32's largest / 16
MAX_SEED = 2**64 - 1  # what torch.manual_seed accepts
MAX_THREADS = 1024
MAX_BATCH_ROWS = 100_000_000
MAX_TOP = 1_000_000_000


def lstm_parameters(n_features: int, hidden: int, latent: int, layers: int) -> int:
    """Parameters of the LSTM autoencoder (lstmae.model), without building it."""

    def lstm(inputs: int) -> int:
        first = 4 * hidden * (inputs + hidden + 2)
        return first + (layers - 1) * 4 * hidden * (2 * hidden + 2)

    return (lstm(n_features) + hidden * latent + latent + lstm(latent)
            + hidden * n_features + n_features)
