"""What the production-mode scenarios (sealed_boot.py, unseal_hostile.py) share: a free loopback
port, a file written whole, and the appliance's own SoftHSM2 in a temporary folder. Unlike
e2e_lib.py it reads nothing from the environment at import, because those scenarios learn the
endpoint and credentials only once kms-provision has run."""
import os
import socket

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def own_softhsm(work):
    """A SoftHSM2 configuration whose tokens live in `work`/tokens, made current for this process
    and the processes it starts (SOFTHSM2_CONF)."""
    os.mkdir(os.path.join(work, "tokens"), 0o700)
    conf = os.path.join(work, "softhsm2.conf")
    write(conf, f"directories.tokendir = {work}/tokens\nobjectstore.backend = file\n"
                "log.level = ERROR\nslots.removable = false\nlibrary.reset_on_fork = true\n")
    os.environ["SOFTHSM2_CONF"] = conf
    return conf
