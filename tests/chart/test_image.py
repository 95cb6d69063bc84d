"""The Dockerfile's runtime stage installs what build/cmf needs, and nothing it does not.

The image itself is built and run by `make image-test` (tests/image/). This check is the quick one:
every shared library `ldd build/cmf` resolves on this (Debian bookworm) host is mapped to its Debian
package with `dpkg -S`, and that package must be installed by the Dockerfile's last stage: listed in its
`apt-get install`, pulled in by their dependencies (the closure is computed offline from the installed
packages' Depends and Pre-Depends), or part of the bookworm-slim base image (Essential or Priority
required, with their own dependencies).

build/cmf must exist (`make test` builds it first); a missing binary fails rather than skips.
"""
import os
import re
import shlex
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
CMF = os.path.join(ROOT, "build", "cmf")


# --- the Dockerfile ---

def dockerfile_instructions(text):
    """(INSTRUCTION, arguments) pairs: comment lines dropped, backslash continuations joined."""
    out, buf = [], ""
    for line in text.splitlines():
        if line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        if buf.strip():
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
        buf = ""
    if buf.strip():
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def runtime_stage(text):
    """The last stage's instructions, FROM included."""
    instructions = dockerfile_instructions(text)
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert starts, "the Dockerfile has no FROM"
    return instructions[starts[-1]:]


def apt_installed(stage):
    """Packages named by `apt-get install` (or `apt install`) in the stage's RUN instructions."""
    packages = []
    for word, args in stage:
        if word != "RUN":
            continue
        for command in re.split(r"&&|\|\||;|\|", args):
            tokens = shlex.split(command)
            for i, tok in enumerate(tokens):
                if tok in ("apt-get", "apt") and "install" in tokens[i + 1:]:
                    rest = tokens[tokens.index("install", i + 1) + 1:]
                    packages += [t for t in rest if not t.startswith("-")]
                    break
    return packages


# --- dpkg ---

def strip_arch(name):
    return name.split(":", 1)[0].strip()


def installed_packages():
    """{name: {"priority", "essential", "deps": [[alternative, ...], ...]}} plus {virtual: {providers}}."""
    fmt = "${Package}\\t${db:Status-Abbrev}\\t${Priority}\\t${Essential}\\t${Provides}\\t${Pre-Depends}\\t${Depends}\\n"
    out = subprocess.run(["dpkg-query", "-W", "-f", fmt], capture_output=True, text=True, check=True).stdout
    db, provides = {}, {}
    for line in out.splitlines():
        name, status, priority, essential, prov, pre, deps = (line.split("\t") + [""] * 7)[:7]
        if not status.startswith("ii"):
            continue
        entry = db.setdefault(name, {"priority": priority, "essential": essential == "yes", "deps": []})
        entry["deps"] += parse_depends(pre) + parse_depends(deps)
        for p in prov.split(","):
            if p.strip():
                provides.setdefault(strip_arch(p.split("(")[0]), set()).add(name)
    return db, provides


def parse_depends(field):
    """'a (>= 1) | b:any, c' -> [['a', 'b'], ['c']]: version constraints and architecture qualifiers dropped."""
    groups = []
    for group in field.split(","):
        alts = [strip_arch(re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt)) for alt in group.split("|")]
        alts = [a for a in alts if a]
        if alts:
            groups.append(alts)
    return groups


def closure(roots, db, provides):
    """Every installed package the roots pull in. Of alternatives `a | b`, apt installs the first it can:
    here the first one installed on this host (directly or through a package providing it)."""
    seen, todo = set(), [r for r in roots if r in db]
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        for alts in db[pkg]["deps"]:
            for alt in alts:
                candidates = [alt] if alt in db else sorted(provides.get(alt, ()))
                if candidates:
                    todo.append(candidates[0])
                    break
    return seen


def base_image_packages(db, provides):
    """What debian:bookworm-slim already holds: the Essential and Priority required packages, with
    their dependencies."""
    roots = [name for name, e in db.items() if e["essential"] or e["priority"] == "required"]
    return closure(roots, db, provides)


def linked_libraries(binary):
    """Absolute paths of the shared libraries ldd resolves for the binary (the vDSO excluded)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        line = line.strip()
        assert "not found" not in line, f"ldd {binary}: {line}"
        m = re.match(r"\S+ => (/\S+) \(", line) or re.match(r"(/\S+) \(", line)
        if m:
            libs.append(m.group(1))
    return libs


def path_variants(path):
    """The path, its realpath, and each with or without the /usr prefix (merged-/usr: dpkg knows one)."""
    out = []
    for p in (path, os.path.realpath(path)):
        out.append(p)
        out.append(p[len("/usr"):] if p.startswith("/usr/") else "/usr" + p)
    return list(dict.fromkeys(out))


def package_of(path):
    for candidate in path_variants(path):
        res = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if res.returncode != 0:
            continue
        for line in res.stdout.splitlines():
            if line.startswith("diversion by"):
                continue
            owners, _, _ = line.partition(": ")
            return strip_arch(owners.split(",")[0])
    raise AssertionError(f"no Debian package owns {path} (tried {path_variants(path)})")


def missing_libraries(libs_to_packages, listed, db, provides):
    """{library: package} for each library whose package the image would not have."""
    have = closure(listed, db, provides) | base_image_packages(db, provides)
    return {lib: pkg for lib, pkg in libs_to_packages.items() if pkg not in have}


# --- fixtures ---

@pytest.fixture(scope="module")
def stage():
    with open(DOCKERFILE) as f:
        return runtime_stage(f.read())


@pytest.fixture(scope="module")
def dpkg_db():
    return installed_packages()


@pytest.fixture(scope="module")
def libs():
    assert os.path.exists(CMF), "build/cmf is missing: run `make build/cmf` (make test builds it first)"
    return {lib: package_of(lib) for lib in linked_libraries(CMF)}


# --- tests ---

def test_runtime_stage_is_bookworm_slim_and_not_root(stage):
    word, image = stage[0]
    assert image.split()[0] == "debian:bookworm-slim", image
    users = [args for word, args in stage if word == "USER"]
    assert users, "the runtime stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert user in ("10001", "cmf"), users[-1]  # the chart's runAsUser is 10001
    entry = [args for word, args in stage if word == "ENTRYPOINT"]
    assert entry and entry[-1] == '["/usr/local/bin/cmf"]'
    assert any(w == "EXPOSE" and "8080" in a.split() for w, a in stage)
    runs = " ".join(args for word, args in stage if word == "RUN")
    assert "--no-install-recommends" in runs


def test_this_host_matches_the_runtime_image():
    with open("/etc/os-release") as f:
        release = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    if release.get("VERSION_CODENAME", "").strip('"') != "bookworm":
        pytest.skip("package names are checked against this host's dpkg database, which is not bookworm")


def test_every_linked_library_comes_with_the_image(stage, dpkg_db, libs):
    db, provides = dpkg_db
    listed = apt_installed(stage)
    assert listed, "the runtime stage installs no packages"
    assert "libpq.so.5" in " ".join(libs), libs  # sanity: ldd really listed the binary's libraries
    missing = missing_libraries(libs, listed, db, provides)
    assert not missing, f"the Dockerfile's runtime stage lacks packages for: {missing}"


def test_the_runtime_stage_installs_only_runtime_libraries(stage, dpkg_db, libs):
    db, _ = dpkg_db
    listed = apt_installed(stage)
    unknown = [p for p in listed if p not in db]
    assert not unknown, f"not known to dpkg here (typo, or not a bookworm package?): {unknown}"
    dev = [p for p in listed if p.endswith("-dev") or p in ("gcc", "make", "pkg-config")]
    assert not dev, f"build tools in the runtime image: {dev}"
    unused = [p for p in listed if p not in libs.values()]
    assert not unused, f"installed but providing no library build/cmf links: {unused}"


def test_a_missing_package_is_reported(stage, dpkg_db, libs):
    db, provides = dpkg_db
    listed = [p for p in apt_installed(stage) if p != "libpq5"]
    missing = missing_libraries(libs, listed, db, provides)
    assert missing.get(next(lib for lib in libs if "libpq.so.5" in lib)) == "libpq5", missing
    # what else goes missing is what only libpq5 pulled in (Kerberos, LDAP, ...)
    assert set(missing.values()) <= closure(["libpq5"], db, provides), missing
    # and with nothing listed, every library outside the base image is reported
    missing = missing_libraries(libs, [], db, provides)
    assert {"libpq5", "libssl3", "libmicrohttpd12", "libjansson4", "libyaml-0-2"} <= set(missing.values())


def test_parsers():
    text = ("FROM debian:bookworm AS build\nRUN apt-get install -y gcc\n"
            "FROM debian:bookworm-slim\n# a comment\nRUN apt-get update \\\n"
            "  && apt-get install -y --no-install-recommends \\\n"
            "  # a comment inside the command\n"
            "     liba1 libb2 && rm -rf /var/lib/apt/lists/*\nUSER 10001\n")
    stage = runtime_stage(text)
    assert stage[0] == ("FROM", "debian:bookworm-slim")
    assert apt_installed(stage) == ["liba1", "libb2"]
    assert parse_depends("libc6 (>= 2.34), libssl3:any | libssl1.1, debconf (>= 0.5) | debconf-2.0") == [
        ["libc6"], ["libssl3", "libssl1.1"], ["debconf", "debconf-2.0"]]
    assert "/lib/x86_64-linux-gnu/libc.so.6" in path_variants("/usr/lib/x86_64-linux-gnu/libc.so.6")
    assert "/usr/lib/x86_64-linux-gnu/libc.so.6" in path_variants("/lib/x86_64-linux-gnu/libc.so.6")
