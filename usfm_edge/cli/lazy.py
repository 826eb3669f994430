"""The ``usfm-edge`` group: subcommands imported only when run, and one way out for every
failure. Whatever goes wrong, a user sees one line that names the thing and the fix, and the
process exits with a documented code (``EXIT_CODES``); ``usfm-edge --debug ...`` (or
``USFM_EDGE_DEBUG=1``) adds the traceback for a bug report."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import click

from usfm_edge._version import __version__
from usfm_edge.errors import UsfmEdgeError

EXIT_CODES = {
    0: "done",
    1: "an unexpected error (a bug): rerun with --debug and report the traceback",
    2: "bad input: an option, a file or a folder; the message says which and what to do",
    3: "the machine refused: a full or read-only disk, a permission, a missing device",
    130: "interrupted (SIGINT, Ctrl-C); training runs saved their state first",
    143: "stopped (SIGTERM); training runs saved their state first",
}
# Libraries of the training stack: a core (cart) install runs without them.
TRAIN_STACK = {"torch", "timm", "torchvision", "safetensors", "nncf", "onnx", "onnxscript", "tensorboardX"}


class Terminated(BaseException):
    """SIGTERM, raised on the main thread so ``finally`` blocks run (temporary folders go,
    files are closed) before the process exits 143."""


class LazyGroup(click.Group):
    def __init__(self, *, commands: dict[str, tuple[str, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self._lazy = commands
        self.params.append(click.Option(
            ["--version"], is_flag=True, expose_value=False, is_eager=True,
            callback=_print_version, help="Show the version and exit.",
        ))
        self.params.append(click.Option(
            ["--debug"], is_flag=True, expose_value=False, is_eager=True,
            callback=lambda ctx, _p, value: ctx.meta.update(debug=value),
            help="Show the full traceback when a command fails (for bug reports).",
        ))

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self._lazy, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self._lazy:
            module_name, attr = self._lazy[name][0].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text from the tables, so listing commands imports none of them.
        rows = [(name, self._lazy[name][1]) for name in self.list_commands(ctx) if name in self._lazy]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in args or os.environ.get("USFM_EDGE_DEBUG") == "1"
        extra.pop("standalone_mode", None)
        return run_guarded(lambda: super(LazyGroup, self).main(args, prog_name, standalone_mode=False, **extra),
                           prog_name or "usfm-edge", debug=debug, command=_command_name(self, args))


def _command_name(group: LazyGroup, args: list[str]) -> str:
    return next((a for a in args if a in group._lazy), "")


def run_guarded(call, prog: str, *, debug: bool = False, command: str = "") -> Any:
    """Run ``call`` (a click main in non-standalone mode) and turn every way it can end into
    one line and an exit code."""
    where = f"{prog} {command}".strip()
    previous = _raise_on_sigterm()
    try:
        result = call()
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        _fail(where, "interrupted", 130)
    except click.ClickException as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) is not None else ""
        _fail(where, _one_line(exc.format_message()) + hint, exc.exit_code)
    except UsfmEdgeError as exc:
        _debug(debug)
        _fail(where, _one_line(str(exc)), exc.exit_code)
    except KeyboardInterrupt:
        _fail(where, "interrupted", 130)
    except Terminated:
        _fail(where, "stopped by SIGTERM", 143)
    except ModuleNotFoundError as exc:
        _debug(debug)
        if exc.name and exc.name.split(".")[0] in TRAIN_STACK:
            _fail(where, f"this command needs {exc.name.split('.')[0]}, part of the training stack: "
                         "pip install -c constraints.txt 'usfm-edge[train]' (README, Install)", 2)
        _fail(where, f"{exc}; reinstall usfm-edge (pip install -c constraints.txt -e '.[all]')", 2)
    except MemoryError:
        _debug(debug)
        _fail(where, "out of memory; use smaller sizes, fewer frames or a smaller batch", 3)
    except OSError as exc:
        _debug(debug)
        _fail(where, _os_error(exc), 3)
    except Exception as exc:  # a bug: one line, and the way to the traceback
        if debug:
            traceback.print_exc()
        _fail(where, f"internal error {type(exc).__name__}: {_one_line(str(exc))}"
                     + ("" if debug else f"; rerun with '{prog} --debug ...' for the traceback and report it"), 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return result


def _raise_on_sigterm():
    def handler(_signum, _frame):
        raise Terminated

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave signals alone
        return signal.getsignal(signal.SIGTERM)


def _os_error(exc: OSError) -> str:
    """An operating-system refusal as the thing and the fix."""
    what = exc.filename or ""
    reason = exc.strerror or str(exc)
    fixes = {28: "free space or write elsewhere", 30: "the disk is read-only; write elsewhere",
             13: "no permission; write elsewhere or fix the folder's permissions",
             2: "it does not exist; check the path", 21: "it is a folder; give a file", 20: "a part of it is a file"}
    fix = fixes.get(exc.errno, "check the path and the disk")
    return f"{what}: {reason}; {fix}" if what else f"{reason}; {fix}"


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _debug(debug: bool) -> None:
    if debug:
        traceback.print_exc()


def _fail(where: str, message: str, code: int) -> None:
    click.echo(f"{where}: error: {message}", err=True)
    raise SystemExit(code)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"usfm-edge {__version__}")
        ctx.exit()


def run_standalone(command: click.Command, prog_name: str) -> None:
    """Run one command outside the group (``python -m ...``) with the same error handling."""
    args = sys.argv[1:]
    run_guarded(lambda: command.main(args, prog_name=prog_name, standalone_mode=False), prog_name,
                debug="--debug" in args or os.environ.get("USFM_EDGE_DEBUG") == "1")
