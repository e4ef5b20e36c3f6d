"""Makes a folder of small images, as a user's own folder might be: for trying `stylegan-jax prepare` and `train`.

  python experiments/make_image_folder.py /tmp/icons [--count 300]

Writes <folder>/<shape>/<i>.png, 64-96 px (the sizes vary) icons of a coloured circle, square or triangle on a
random background, one sub-folder per shape (so `--labels=subfolders` gives 3 classes), plus the odd files a
real folder has: a truncated PNG, a text file named .jpg, an image smaller than 64x64 and a README.txt (not an
image: ignored). Deterministic for --seed.
"""

import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ('circle', 'square', 'triangle')


def icon(rs: np.random.RandomState, shape: str, size: int) -> Image.Image:
  background, colour = (tuple(int(v) for v in rs.randint(0, 256, 3)) for _ in range(2))
  image = Image.new('RGB', (size, size), background)
  draw = ImageDraw.Draw(image)
  r = rs.uniform(0.25, 0.45) * size
  cx, cy = rs.uniform(0.4, 0.6, 2) * size
  if shape == 'circle':
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
  elif shape == 'square':
    draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
  else:
    draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
  return image


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('folder')
  parser.add_argument('--count', type=int, default=300, help='good images (default 300)')
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  rs = np.random.RandomState(args.seed)
  for shape in SHAPES:
    os.makedirs(os.path.join(args.folder, shape), exist_ok=True)
  for i in range(args.count):
    shape = SHAPES[i % len(SHAPES)]
    icon(rs, shape, int(rs.randint(64, 97))).save(os.path.join(args.folder, shape, f'{i:04d}.png'))
  # The odd files.
  icon(rs, 'circle', 80).save(os.path.join(args.folder, 'circle', 'truncated.png'))
  path = os.path.join(args.folder, 'circle', 'truncated.png')
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  with open(os.path.join(args.folder, 'square', 'notes.jpg'), 'w') as f:
    f.write('not a JPEG\n')
  icon(rs, 'triangle', 32).save(os.path.join(args.folder, 'triangle', 'tiny.png'))
  with open(os.path.join(args.folder, 'README.txt'), 'w') as f:
    f.write('icons made by experiments/make_image_folder.py\n')
  print(f'wrote {args.count} icons and 4 odd files to {args.folder}')


if __name__ == '__main__':
  main()
