# torch.cdist on the GPU for the same shapes as the selftest bench (N=32 x 4M float32), p = 2, 1, inf.
# Prints "TORCH cdist_p<p> ms=<median>" lines for bench/gpu-check.sh's table.
import sys
try:
    import torch
except Exception as e:  # noqa: BLE001
    print(f"TORCH unavailable: {e}")
    sys.exit(0)
if not torch.cuda.is_available():
    print("TORCH unavailable: torch.cuda.is_available() is False")
    sys.exit(0)
N, n = 32, 4 << 20
x = torch.randn(N, n, device="cuda", dtype=torch.float32) * 0.02
print(f"TORCH version={torch.__version__} device={torch.cuda.get_device_name(0)}")
for p, label in ((2.0, "2"), (1.0, "1"), (float("inf"), "inf")):
    torch.cdist(x, x, p=p)
    torch.cuda.synchronize()
    times = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        torch.cdist(x, x, p=p)
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    print(f"TORCH cdist_p{label} ms={times[len(times) // 2]:.4f}")
