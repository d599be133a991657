from ntksym.finite.rmt import SpectrumResult, limit_spectrum, normalize_activation  # noqa: F401  (Fan & Wang spectra)
from ntksym.finite.rmt_sample import ks_distance, sample_spectra, training_simulation  # noqa: F401
from ntksym.finite.montecarlo import MCStats, monte_carlo, torch_kernels  # noqa: F401  (MC over initialisations)
from ntksym.finite.dispersion import (compare, continuum_limit, exact_moments, hanin_nica, r_eoc,  # noqa: F401
                                      r_weights, ratio_standard_error, training_run)  # (Seleznova & Kutyniok)
