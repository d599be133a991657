from ntksym.finite.rmt import SpectrumResult, limit_spectrum, normalize_activation  # noqa: F401  (Fan & Wang spectra)
from ntksym.finite.rmt_sample import ks_distance, sample_spectra, training_simulation  # noqa: F401
