"""lstmae: time-series anomaly detection with an LSTM autoencoder.

    from lstmae import Detector
    det = Detector(window=32).fit(train_frame)
    result = det.score(new_frame)          # one row per window
    det.save("model.lstmae")

`Detector` is imported lazily so that `lstmae --help` and other paths that do
not train or score never pay for importing torch.
"""

from lstmae.errors import LstmaeError

__version__ = "0.1.0"
__all__ = ["Detector", "LstmaeError", "__version__"]


def __getattr__(name):
    if name == "Detector":
        from lstmae.detector import Detector

        return Detector
    raise AttributeError(f"module 'lstmae' has no attribute {name!r}")
