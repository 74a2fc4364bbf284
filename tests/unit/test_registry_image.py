"""What `essaim registry image` packs: essaim's run-time packages (extras only when
asked for), never the development tools, and the interpreter's libraries."""

from __future__ import annotations

from essaim.cli import registry_image


def test_runtime_packages_follow_requirements_and_asked_extras() -> None:
    names = {d.metadata["Name"].lower() for d in registry_image.runtime_distributions()}
    # pyjwt[crypto] asks for cryptography; httpx brings httpcore and h11.
    assert {"essaim", "h11", "msgspec", "httpx", "httpcore", "pyjwt", "cryptography"} <= names
    # essaim's `dev` extra and httpx's unrequested extras stay out.
    assert not names & {"pytest", "mypy", "ruff", "docker", "hypothesis", "rich", "h2"}


def test_requirement_strings_are_read_with_their_extras_and_markers() -> None:
    assert registry_image._requirement("pyjwt[crypto]>=2.9") == ("pyjwt", {"crypto"}, set())
    assert registry_image._requirement('cryptography>=3.4.0; extra == "crypto"') == (
        "cryptography",
        set(),
        {"crypto"},
    )
    assert registry_image._requirement("cffi>=2 ; platform_python_implementation != 'PyPy'") == (
        "cffi",
        set(),
        set(),
    )


def test_the_interpreter_and_its_libraries_are_packed() -> None:
    files = {target for _, target in registry_image.rootfs_files()}
    assert str(registry_image.interpreter()) in files
    assert any(t.endswith("/libc.so.6") for t in files)
    assert any(t.startswith(registry_image.PACKAGES_DIR + "/essaim/") for t in files)
    assert not any("/test/" in t or "tkinter" in t for t in files)
