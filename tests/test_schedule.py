"""The progressive schedule against the official FFHQ timetable (spec §5)."""

import dataclasses

import pytest

from stylegan_jax.configs import default, ffhq1024
from stylegan_jax import schedule


@pytest.fixture(scope='module')
def ffhq():
  return ffhq1024.get_config()


# (kimg, lod, stage resolution, minibatch (8 GPUs), learning rate, tick kimg)
FFHQ_TIMETABLE = [
    (0, 7.0, 8, 256, 0.001, 140), (599, 7.0, 8, 256, 0.001, 140), (900, 6.5, 16, 128, 0.001, 120),
    (1200, 6.0, 16, 128, 0.001, 120), (1800, 6.0, 16, 128, 0.001, 120), (2100, 5.5, 32, 64, 0.001, 100),
    (3000, 5.0, 32, 64, 0.001, 100), (3300, 4.5, 64, 32, 0.001, 80), (4500, 3.5, 128, 32, 0.0015, 60),
    (5700, 2.5, 256, 32, 0.002, 40), (6900, 1.5, 512, 32, 0.003, 30), (7800, 1.0, 512, 32, 0.003, 30),
    (8100, 0.5, 1024, 32, 0.003, 20), (8400, 0.0, 1024, 32, 0.003, 20), (25000, 0.0, 1024, 32, 0.003, 20),
]


@pytest.mark.parametrize('kimg,lod,res,minibatch,lrate,tick', FFHQ_TIMETABLE)
def test_official_ffhq_timetable(ffhq, kimg, lod, res, minibatch, lrate, tick):
  s = schedule.schedule_from_config(kimg * 1000, ffhq.schedule, 1024)
  assert (s.lod, s.resolution, s.minibatch, s.tick_kimg) == pytest.approx((lod, res, minibatch, tick))
  assert s.G_lrate == s.D_lrate == pytest.approx(lrate)


def test_fade_alpha_and_adam_reset_boundaries(ffhq):
  at = lambda kimg: schedule.schedule_from_config(int(kimg * 1000), ffhq.schedule, 1024)
  assert at(600).alpha == 1.0 and at(900).alpha == pytest.approx(0.5)
  assert at(1199.4).alpha == pytest.approx(1.0, abs=1e-3)
  bounds = [at(k).lod_bounds for k in (0, 599, 601, 1199, 1200, 1799, 1801)]
  # Adam resets where the bounds change: at each fade start (600) and stable start (1200), and at 1800.
  changes = [i for i in range(1, len(bounds)) if bounds[i] != bounds[i - 1]]
  assert changes == [2, 4, 6]


def test_single_gpu_minibatches():
  cfg = ffhq1024.get_config('1')
  assert [schedule.schedule_from_config(k * 1000, cfg.schedule, 1024).minibatch for k in (0, 4500, 6900, 8400)] == [
      128, 16, 4, 4]


def test_minibatch_must_divide_across_devices():
  cfg = default.get_config()
  schedule.check_minibatches(cfg.schedule, 32, 8)
  cfg.schedule.minibatch_dict = {'16': 12}
  with pytest.raises(ValueError, match='minibatch at 16x16 is 12, which does not divide across 8 devices'):
    schedule.check_minibatches(cfg.schedule, 32, 8)


def test_quickstart_grows_8_16_32():
  cfg = default.get_config()
  assert schedule.stage_resolutions(cfg.schedule, 32) == [8, 16, 32]
  stages = [schedule.schedule_from_config(k * 1000, cfg.schedule, 32).resolution for k in (0, 11, 29, 31, 100)]
  assert stages == [8, 16, 16, 32, 32]


def test_next_stage_is_the_first_step_past_the_switch(ffhq):
  """The loop's steps add the stage's minibatch: FFHQ's 8x8 (minibatch 256) ends at kimg 600, so 16x16 starts at
  the step at nimg 600064 (2344 x 256); the last stage has no next one, nor has a run that ends before it."""
  following = schedule.next_stage(0, ffhq.schedule, 1024, 25_000_000)
  assert (following.resolution, following.minibatch, following.kimg) == (16, 128, 600.064)
  assert schedule.next_stage(600_064, ffhq.schedule, 1024, 25_000_000).kimg == 1800.064  # 32x32: 600064 + k x 128
  assert schedule.next_stage(8_400_000, ffhq.schedule, 1024, 25_000_000) is None
  assert schedule.next_stage(0, ffhq.schedule, 1024, 600_064) is None  # the run's last step is at 599808
  assert schedule.next_stage(0, ffhq.schedule, 1024, 600_065).resolution == 16


def test_minibatch_floor_raises_small_stages_with_sqrt_learning_rates():
  """The official 8-GPU FFHQ table (8²: 256, 16²: 128, 32²: 64, 64² and up: 32) on 64 devices with at least 4
  images per device: every stage from 16² becomes 256, its learning rates x sqrt(2), x2 or x sqrt(8)."""
  cfg = ffhq1024.get_config('8')
  assert schedule.with_minibatch_floor(cfg, 64) is cfg  # off in the official configs
  cfg.train.min_minibatch_per_device = 4
  raised = schedule.with_minibatch_floor(cfg, 64)
  root8 = 8 ** 0.5
  expected = {8: (256, 0.001), 16: (256, 0.001 * 2 ** 0.5), 32: (256, 0.002), 64: (256, 0.001 * root8),
              128: (256, 0.0015 * root8), 512: (256, 0.003 * root8), 1024: (256, 0.003 * root8)}
  for resolution, (minibatch, lrate) in expected.items():
    nimg = 0
    while schedule.schedule_from_config(nimg, raised.schedule, 1024).resolution < resolution:
      nimg += 100_000
    sched = schedule.schedule_from_config(nimg, raised.schedule, 1024)
    assert (sched.minibatch, sched.G_lrate, sched.D_lrate) == (minibatch, pytest.approx(lrate), pytest.approx(lrate))
  assert '1024' not in cfg.schedule.minibatch_dict and cfg.schedule.minibatch_base == 32  # the input is unchanged
  assert schedule.with_minibatch_floor(raised, 64) is raised  # applied again: nothing to raise
  assert schedule.with_minibatch_floor(cfg, 8) is cfg  # 8 GPUs: every official stage has >= 4 per device


def test_learning_rates_ramp_down_linearly_over_the_run_end():
  cfg = default.get_config()
  cfg.schedule.lrate_rampdown_kimg = 40.0
  at = lambda kimg, total=100.0: schedule.schedule_from_config(kimg * 1000, cfg.schedule, 32, total)
  # (kimg, learning rate): the stage's own (0.002 at 16x16, 0.003 at 32x32) until 60 kimg, then linearly to 0
  for kimg, lrate in [(15, 0.002), (50, 0.003), (60, 0.003), (70, 0.00225), (90, 0.00075), (100, 0.0)]:
    s = at(kimg)
    assert s.G_lrate == s.D_lrate == pytest.approx(lrate)
  assert at(90, total=200.0).G_lrate == pytest.approx(0.003)  # a longer run ramps down later
  unramped = schedule.schedule_from_config(90_000, cfg.schedule, 32)  # without the run's length: the stage's rates
  assert unramped.G_lrate == pytest.approx(0.003) and unramped == dataclasses.replace(at(90), G_lrate=0.003,
                                                                                     D_lrate=0.003)
