"""Times one training step of a PyTorch peer on the shape of `hetsyn bench`.

Run by scripts/bench_peers.sh inside its venv; prints one `PEER ...` line.

  python bench_peers.py snntorch [--threads N] [--repeats N] [--batch B] [--steps T] [--density D] [--seed S]
  python bench_peers.py authors DIR [same options]

snntorch: 700 -> 128 RLeaky (all-to-all recurrence, subtract reset) -> 64
RLeaky -> 20 leaky readout (snn.Leaky without reset, its potential is the
readout trace), the HomNeuLIF network of `hetsyn bench --model homneulif`: one
fixed decay exp(-1/12.5) for every neuron, weights N(0, 1/fan_in), threshold 1,
dropout 0.2 on the hidden spikes, loss cross-entropy of the softmax summed over
steps 11.. (as hetsyn's softmax_sum), AdamW (lr 2e-3, weight decay 4e-3).
snnTorch's default surrogate (atan) stands in for the multi-Gaussian.

authors: the HetSynLIF network of the authors' SHD script
(DIR/shd/SHD_HetSynLIF_RSNN.py, class HetSynLifRSNN, from the user's own
checkout; nothing of it is copied here), initialised and optimised as that
script does (decays from tau ~ U(5, 20) ms, AdamW with the decays at twice the
rate, clipping of the decays after each step), against `hetsyn bench --model
hetsynlif`.

Both run on random spikes (each bin 1 with probability D) and random labels;
a step is forward, backward and optimizer step; the figure is the median of
--repeats steps after one warm-up step. Peak RSS is that of the whole process.
"""

import argparse
import math
import resource
import statistics
import sys
import time
from pathlib import Path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer", choices=["snntorch", "authors"])
    parser.add_argument("dir", nargs="?", help="the authors' checkout (for 'authors')")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--density", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.peer == "authors" and not args.dir:
        parser.error("'authors' needs the directory of the authors' checkout")
    if args.repeats < 1 or args.batch < 1 or args.steps < 12 or not 0.0 <= args.density <= 1.0:
        parser.error("need --repeats >= 1, --batch >= 1, --steps >= 12 and 0 <= --density <= 1")
    return args


def snntorch_step(torch, args):
    """The HomNeuLIF network in snnTorch and one training step of it."""
    import snntorch as snn
    import torch.nn as nn

    beta = math.exp(-1.0 / 12.5)  # tau 12.5 ms, dt 1 ms: hetsyn's HomNeu decay

    def linear(n_in, n_out):
        layer = nn.Linear(n_in, n_out, bias=False)
        nn.init.normal_(layer.weight, 0.0, 1.0 / math.sqrt(n_in))
        return layer

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = linear(700, 128)
            self.lif1 = snn.RLeaky(beta=beta, linear_features=128, all_to_all=True, reset_mechanism="subtract")
            self.fc2 = linear(128, 64)
            self.lif2 = snn.RLeaky(beta=beta, linear_features=64, all_to_all=True, reset_mechanism="subtract")
            self.fc3 = linear(64, 20)
            self.out = snn.Leaky(beta=beta, reset_mechanism="none")
            for rleaky, n in ((self.lif1, 128), (self.lif2, 64)):
                nn.init.normal_(rleaky.recurrent.weight, 0.0, 1.0 / math.sqrt(n))
                nn.init.zeros_(rleaky.recurrent.bias)
            self.drop = nn.Dropout(0.2)

        def forward(self, x):  # x: [steps, batch, 700]
            spk1, mem1 = self.lif1.init_rleaky()
            spk2, mem2 = self.lif2.init_rleaky()
            mem3 = self.out.init_leaky()
            summed = 0.0
            for t in range(x.shape[0]):
                spk1, mem1 = self.lif1(self.fc1(x[t]), spk1, mem1)
                spk2, mem2 = self.lif2(self.fc2(self.drop(spk1)), spk2, mem2)
                _, mem3 = self.out(self.fc3(self.drop(spk2)), mem3)
                if t >= 11:
                    summed = summed + torch.softmax(mem3, dim=1)
            return summed

    net = Net()
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=4e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.steps, args.batch, 700, generator=gen) < args.density).float()
    labels = torch.randint(0, 20, (args.batch,), generator=gen)

    def step():
        optimizer.zero_grad()
        loss = loss_fn(net(x), labels)
        loss.backward()
        optimizer.step()

    return step


def authors_step(torch, args):
    """The authors' HetSynLIF network, set up as their SHD script does."""
    import torch.nn as nn

    shd = Path(args.dir) / "shd"
    if not (shd / "SHD_HetSynLIF_RSNN.py").is_file():
        sys.exit(f"bench_peers.py: {shd / 'SHD_HetSynLIF_RSNN.py'} not found (is {args.dir} a checkout of dzcgood/HetSyn?)")
    sys.path.insert(0, str(shd))
    from SHD_HetSynLIF_RSNN import HetSynLifRSNN

    device = torch.device("cpu")
    rng = torch.Generator(device=device)
    rng.manual_seed(args.seed)
    model = HetSynLifRSNN(
        dropout_rate=[0.2, 0.2], rng=rng, device=device,
        self_rec=True, learning_rho=True, bias=False, n_in=700, n_hid=[128, 64], n_out=20,
        dt=1e-3, learning_w=True, rho_l=0.0, rho_h=1.0, thr=1.0, tau_r=20e-3,
    )
    with torch.no_grad():
        model.initialize_params()
        for rho in (model.rho_in1, model.rho_rec1, model.rho_in2, model.rho_rec2, model.rho_out):
            tau = torch.empty(rho.shape).uniform_(5e-3, 20e-3, generator=rng)
            rho.data.copy_(torch.exp(-model.dt / tau))
        model.align_params()
    weights = [model.w_in1, model.w_rec1, model.w_in2, model.w_rec2, model.w_out]
    decays = [model.rho_in1, model.rho_rec1, model.rho_in2, model.rho_rec2, model.rho_out]
    optimizer = torch.optim.AdamW(
        [{"params": weights, "lr": 2e-3}, {"params": decays, "lr": 4e-3}], lr=2e-3, weight_decay=4e-3
    )
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.batch, args.steps, 700, generator=gen) < args.density).float()  # batch first
    labels = torch.randint(0, 20, (args.batch,), generator=gen)
    model.train()

    def step():
        optimizer.zero_grad()
        _, _, predictions = model(x)
        loss = loss_fn(predictions, labels)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.align_params()

    return step


def main():
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    step = snntorch_step(torch, args) if args.peer == "snntorch" else authors_step(torch, args)
    times = []
    for r in range(args.repeats + 1):
        start = time.perf_counter()
        step()
        if r > 0:
            times.append(time.perf_counter() - start)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    version = torch.__version__
    if args.peer == "snntorch":
        import snntorch

        version += f" snntorch {snntorch.__version__}"
    print(
        f"PEER peer={args.peer} threads={args.threads} batch={args.batch} steps={args.steps} "
        f"train_s={statistics.median(times):.4f} peak_rss_mib={peak_mib:.1f} torch={version}"
    )


if __name__ == "__main__":
    main()
