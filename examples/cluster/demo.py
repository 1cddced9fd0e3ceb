"""A scripted local cluster: SeaweedFS (S3) + a Dask scheduler with 2 workers, and a workflow over them.

    python examples/cluster/demo.py

What it sets up, the way a team would on real machines:
- buckets `meta`, `raw`, `persistent`; an engine identity allowed `meta` only, a tasks identity allowed all;
- engine.toml (the engine's settings: meta credentials only) and worker.toml (the workers' settings);
- `dask scheduler` and two `dask worker` processes, each with its own node-cache folder and worker.toml;
- a dataset uploaded once with the tasks' credentials, then `ferry run ... --executor dask --dask-address ...`
  with the engine's settings, and `ferry executions show` to see where each task ran and its cache hits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ferry.testing.s3server import Identity, SeaweedS3, free_port

HERE = Path(__file__).resolve().parent


def settings_file(path: Path, s3: SeaweedS3, key: str, secret: str, stores: tuple[str, ...], home: Path) -> Path:
    lines = [f'home = "{home}"', 'metadata_url = "s3://meta/demo"', 'raw_output_prefix = "s3://raw/demo"',
             'persistent_url = "s3://persistent/demo"']
    for store in stores:
        lines += [f"[stores.{store}]", f'key = "{key}"', f'secret = "{secret}"',
                  f'client_kwargs = {{ endpoint_url = "{s3.endpoint}", region_name = "us-east-1" }}']
    path.write_text("\n".join(lines) + "\n")
    return path


def ferry(*args: str, config: Path, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.update(FERRY_CONFIG=str(config), FERRY_HOME=str(home))
    out = subprocess.run([sys.executable, "-m", "ferry.cli.main", *args], env=env, capture_output=True, text=True)
    print(f"$ ferry {' '.join(args)}\n{out.stdout}{out.stderr}")
    if out.returncode != 0:
        raise SystemExit(out.returncode)
    return out.stdout


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ferry-cluster-") as tmp:
        root = Path(tmp)
        engine_home = root / "engine"
        identities = [Identity("engine", "engine-key", "engine-secret", ["meta"]),
                      Identity("tasks", "tasks-key", "tasks-secret", ["meta", "raw", "persistent"])]
        with SeaweedS3(root / "s3", ["meta", "raw", "persistent"], identities) as s3:
            engine_toml = settings_file(root / "engine.toml", s3, "engine-key", "engine-secret", ("metadata",), engine_home)
            worker_toml = settings_file(root / "worker.toml", s3, "tasks-key", "tasks-secret",
                                        ("metadata", "raw", "persistent"), root / "worker")
            port = free_port()
            scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                          "--port", str(port), "--dashboard-address", ":0"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            workers = []
            for i in range(2):
                env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
                env.update(FERRY_CONFIG=str(worker_toml), FERRY_CACHE_DIR=str(root / f"node-{i}" / "cache"),
                           FERRY_IN_TASK="1",
                           PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
                workers.append(subprocess.Popen(
                    [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{port}", "--nthreads", "1",
                     "--name", f"node-{i}", "--resources", "CPU=1", "--no-dashboard"],
                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            try:
                time.sleep(2)
                reference = root / "reference.bin"
                reference.write_bytes(os.urandom(4 << 20))
                uri = ferry("datasets", "upload", str(reference), "refs/reference.bin", config=worker_toml,
                            home=root / "uploader").strip().splitlines()[-1]
                ferry("run", str(HERE / "workflow.py"), "pipeline", "--reference", uri, "--n", "6",
                      "--executor", "dask", "--dask-address", f"tcp://127.0.0.1:{port}",
                      config=engine_toml, home=engine_home)
                ferry("executions", "show", config=engine_toml, home=engine_home)
            finally:
                for proc in [*workers, scheduler]:
                    proc.terminate()
                for proc in [*workers, scheduler]:
                    proc.wait(timeout=30)


if __name__ == "__main__":
    main()
