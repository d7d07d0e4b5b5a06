"""Train a DeepONet on the antiderivative operator with the library API (no CLI).

Generates a small copy of the antiderivative dataset, trains for a short budget on the CPU,
evaluates on the test split and reloads the checkpoint. About a minute on a laptop.
Run from the repository root: ``python examples/train_operator.py [--epochs N]``;
``--quick`` trains on 200 functions for 20 epochs (seconds).
"""

import argparse

import torch

import pdekit
from pdekit.data import generate, load_recipe, open_dataset
from pdekit.models import DeepONet
from pdekit.train import Trainer, evaluate

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=None, help="default 300 (--quick: 20)")
parser.add_argument("--out", default="runs/example-deeponet")
parser.add_argument("--quick", action="store_true", help="200 functions, 20 epochs")
args = parser.parse_args()
samples = 200 if args.quick else 1000
epochs = args.epochs or (20 if args.quick else 300)

recipe = load_recipe("datasets/antiderivative.toml").replace(samples=samples)  # per split
folder = f"data/antiderivative-n{samples}"
generate(recipe, folder, progress=False)
train = open_dataset(folder, "train")  # items {"u": (100,), "s": (100,)}
test = open_dataset(folder, "test")

torch.manual_seed(0)
model = DeepONet(branch=[100, 40, 40], trunk=[1, 40, 40])  # Lu et al. 2021
trainer = Trainer(model, train, test, epochs=epochs, batch_size=100, lr=1e-3, loss="mse",
                  normalization="none", eval_every=min(50, epochs), out=args.out, progress=not args.quick)
trainer.fit()

result = evaluate(pdekit.load(f"{args.out}/best.pt"), test, inputs=["u"], outputs=["s"])
print(f"test relative L2 {result['metrics']['relative_l2']:.3e}, MSE {result['metrics']['mse']:.2e}")
