"""A ``worker_file`` for ClusterGridSearch: PyRates' example, a Welch power spectrum per
column, computed on the workers so only spectra travel back.

The client reads this file and ships its source to the workers (no shared filesystem);
``worker_postprocessing`` is called once per chunk with the chunk's results and result map
as ``grid_search`` returns them.
"""

import numpy as np
import pandas as pd


def worker_postprocessing(results: pd.DataFrame, result_map: pd.DataFrame) -> pd.DataFrame:
    fs = 1.0 / (results.index[1] - results.index[0])
    x = np.nan_to_num(results.to_numpy())
    try:
        from scipy.signal import welch
    except ImportError:  # a periodogram when the workers have no scipy
        x = x - x.mean(axis=0)
        freqs = np.fft.rfftfreq(x.shape[0], d=1.0 / fs)
        power = np.abs(np.fft.rfft(x, axis=0)) ** 2 / (fs * x.shape[0])
    else:
        freqs, power = welch(x, fs=fs, axis=0, nperseg=min(x.shape[0], 1024))
    return pd.DataFrame(power, index=pd.Index(freqs, name="freq"), columns=results.columns)
