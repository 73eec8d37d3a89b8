"""How long `import sikd_utils` (and its core modules) takes beyond `import torch`.

Reference measured in the same run: `import torch` alone, and `import monai` on top of it (what the
package would cost if it imported MONAI eagerly). Each figure is the best of 3 fresh interpreters.
"""

import subprocess
import sys
import time


def best_of(code: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return min(times)


if __name__ == "__main__":
    torch_only = best_of("import torch")
    package = best_of("import torch, sikd_utils, sikd_utils.averaging, sikd_utils.models, sikd_utils.distill, "
                      "sikd_utils.train, sikd_utils.data")
    with_monai = best_of("import torch, monai")
    print(f"import torch                      {torch_only:6.2f} s")
    print(f"+ sikd_utils core modules         {package - torch_only:6.2f} s")
    print(f"+ monai (reference, not imported) {with_monai - torch_only:6.2f} s")
    print(f"package cost / monai cost: {(package - torch_only) / (with_monai - torch_only):.2f}")
