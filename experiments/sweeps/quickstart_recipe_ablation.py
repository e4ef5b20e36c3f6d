"""What each change of the quickstart recipe buys: the default, and the default with one change undone.

A 30-kimg proxy of the quickstart (8x8 to 10 kimg, 16x16 faded in by 20 and trained to 30: the stage where the old
recipe dropped classes), ranked by fd_domain of 5000 Gs images at 16x16 at 30 kimg (lower is better) and its
class coverage. The last trial is the default itself, identical to a full `./run.sh train` up to 30 kimg:

  stylegan-jax prepare --config=default                                                          # once
  stylegan-jax sweep run experiments/sweeps/quickstart_recipe_ablation.py --dir sweeps/ablation
  stylegan-jax sweep summary --dir sweeps/ablation

Results (2-core CPU, 2026-12-02): experiments/sweeps/results/recipe_ablation/.
"""

from stylegan_jax import sweeps

UNDO = [{'loss.r1_gamma': 1.0},                                        # the old quickstart's R1 gamma
        {'schedule.minibatch_base': 32},                                # the old minibatch
        {'loss.penalty_interval': 1},                                   # R1 on every D step
        {'train.G_smoothing_kimg': 2.5, 'train.G_smoothing_rampup': 0.0},  # the old Gs average
        {}]                                                             # the default


def get_sweep():
  return sweeps.Sweep(config='default', overrides={'train.total_kimg': 30.0, 'train.checkpoint_kimg': 10.0},
                      trials=UNDO)
