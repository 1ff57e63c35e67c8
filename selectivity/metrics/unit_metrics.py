"""Single-unit metrics beside SI, from streamed class statistics (pure tensor functions).

Definitions and sources (docs/unit_toolkit.md; docs/definitions.md#other-single-unit-metrics):
    d'                    preferred class vs the rest, signal-detection sensitivity (Green & Swets 1966)
    one-vs-rest ROC-AUC   P(r_pref > r_rest) + P(tie)/2, exact from ranks (Mann-Whitney U / (n_pos n_neg); Hanley & McNeil 1982)
    mutual information    I(R; C) in bits between the binned response R and the class C (Cover & Thomas 2006)
    lifetime sparseness   S = (1 - (sum r / n)^2 / (sum r^2 / n)) / (1 - 1/n) over the n inputs
                          (Vinje & Gallant 2000, after Rolls & Tovee 1995)
Leading dimensions ([..., K, U]) are labelings: the true labels and label shuffles.
"""
import numpy as np
import torch
from scipy.stats import entropy

from selectivity.metrics.streaming import UnitStatistics


def d_prime_from_moments(means: torch.Tensor, variances: torch.Tensor, counts: torch.Tensor,
                         preferred: torch.Tensor) -> torch.Tensor:
    """[U] d' between the inputs of each unit's preferred class and all other inputs.

    d' = (mean_preferred - mean_rest) / sqrt((var_preferred + var_rest) / 2), with the rest
    pooled over inputs (not over class means). 0 where both variances are 0.

    Args:
        means, variances: [K, U] class-conditional means and population variances.
        counts: [K] inputs per class.
        preferred: [U] the preferred class of each unit.
    """
    counts = counts.unsqueeze(1).to(means.dtype)  # [K, 1]
    preferred = preferred.unsqueeze(0)  # [1, U]
    sums, squares = means * counts, (variances + means.square()) * counts  # [K, U]
    n_preferred = counts.squeeze(1)[preferred.squeeze(0)]  # [U]
    mean_preferred = means.gather(0, preferred).squeeze(0)
    var_preferred = variances.gather(0, preferred).squeeze(0)
    n_rest = (counts.sum() - n_preferred).clamp_min(1)
    mean_rest = (sums.sum(0) - sums.gather(0, preferred).squeeze(0)) / n_rest
    var_rest = ((squares.sum(0) - squares.gather(0, preferred).squeeze(0)) / n_rest - mean_rest.square()).clamp_min(0)
    spread = ((var_preferred + var_rest) / 2).sqrt()
    return torch.where(spread > 0, (mean_preferred - mean_rest) / spread.clamp_min(1e-12), torch.zeros_like(spread))


def preferred_versus_rest_d_prime(stats: UnitStatistics) -> torch.Tensor:
    """[U] d' of the preferred class (largest class mean) vs the rest, from streamed statistics."""
    return d_prime_from_moments(stats.means, stats.variances, stats.counts, stats.preferred_class())


def rank_auc(rank_sum: torch.Tensor, positives: torch.Tensor, num_inputs: int) -> torch.Tensor:
    """[...] exact ROC-AUC of positives vs the rest from the sum of the positives' ranks (Mann-Whitney U).

    AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg), ranks 1..N tie-averaged over all
    N inputs: P(r_pos > r_neg) + P(tie) / 2, equal to sklearn's roc_auc_score. 0.5 where
    either side is empty.

    Args:
        rank_sum: [...] sum of the positives' ranks.
        positives: [...] n_pos.
        num_inputs: N.
    """
    positives = positives.to(torch.float64)
    pairs = positives * (num_inputs - positives)
    wins = rank_sum - positives * (positives + 1) / 2
    return torch.where(pairs > 0, wins / pairs.clamp_min(1), torch.full_like(wins, 0.5))


def mutual_information_bits(histograms: torch.Tensor) -> torch.Tensor:
    """[..., U] I(R; C) = H(R) + H(C) - H(R, C) in bits, from the joint histogram (plug-in estimate).

    Entropies by scipy.stats.entropy (base 2). Equals sklearn's mutual_info_score on the
    (class, bin) pairs, divided by ln 2. 0 for a unit whose response never leaves one bin.

    Args:
        histograms: [..., K, U, B] counts of (class, bin) per unit.
    """
    joint = histograms.movedim(-3, -2).cpu().numpy().astype(np.float64)  # [..., U, K, B]
    if joint.sum() == 0:
        return torch.zeros(joint.shape[:-2], dtype=torch.float64)
    joint_entropy = entropy(joint.reshape(*joint.shape[:-2], -1), base=2, axis=-1)
    class_entropy = entropy(joint.sum(-1), base=2, axis=-1)
    response_entropy = entropy(joint.sum(-2), base=2, axis=-1)
    information = np.clip(class_entropy + response_entropy - joint_entropy, 0, None)  # rounding can dip below 0
    return torch.from_numpy(information)


def lifetime_sparseness(total: torch.Tensor, total_square: torch.Tensor, num_inputs: int) -> torch.Tensor:
    """[U] Vinje & Gallant (2000) lifetime sparseness over the n inputs, in [0, 1].

    S = (1 - a) / (1 - 1/n), a = (sum r / n)^2 / (sum r^2 / n) (Rolls & Tovee 1995's a).
    1 for a unit that answers one input only, 0 for one that answers all alike; 0 for a
    dead unit (a undefined).

    Args:
        total, total_square: [U] sums of r and r^2 over the inputs.
        num_inputs: n (>= 2).
    """
    mean, mean_square = total / num_inputs, total_square / num_inputs
    activity = torch.where(mean_square > 0, mean.square() / mean_square.clamp_min(1e-300), torch.ones_like(mean))
    return ((1 - activity) / (1 - 1 / num_inputs)).clamp(0, 1)
