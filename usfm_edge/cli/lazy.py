"""A click group that imports a subcommand's module only when that command runs."""

from __future__ import annotations

import importlib

import click

from usfm_edge._version import __version__
from usfm_edge.errors import UsfmEdgeError


class LazyGroup(click.Group):
    def __init__(
        self,
        *,
        commands: dict[str, tuple[str, str]],
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self._lazy = commands
        self.params.append(click.Option(
            ["--version"], is_flag=True, expose_value=False, is_eager=True,
            callback=_print_version, help="Show the version and exit.",
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

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UsfmEdgeError as exc:
            click.echo(f"usfm-edge: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"usfm-edge {__version__}")
        ctx.exit()


def run_standalone(command: click.Command, prog_name: str) -> None:
    """Run one command outside the group (``python -m ...``) with the same error handling."""
    try:
        command.main(prog_name=prog_name, standalone_mode=False)
    except UsfmEdgeError as exc:
        click.echo(f"{prog_name}: error: {exc}", err=True)
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
