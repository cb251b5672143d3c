"""``memstrata chat``: an offline terminal assistant that remembers across restarts.

Runs on the defaults (the embedded PostgreSQL, the MiniLM embedder, the default local model) or
on what ``MEMSTRATA_DATABASE_URL`` / ``MEMSTRATA_MODEL_PATH`` / ``MEMSTRATA_MODEL_URL`` name. The
user id (``--user``, default the OS user name) selects the memory; each start is a new session
(``--session`` to continue one). Slash commands: /plan /recall /forget /export /help /quit.
"""

from __future__ import annotations

import getpass
import itertools
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from memstrata.adapters.cli.app import app
from memstrata.errors import InvalidValues, MemstrataError
from memstrata.memory import Memory
from memstrata.rendering import format_date
from memstrata.replies import Reply
from memstrata.schemas import RecallHit, Scope
from memstrata.schemas.config import MemoryConfig, PlannerConfig
from rich.console import Console
from rich.markup import escape
from rich.text import Text

__all__ = ["ChatSession", "chat"]

HELP = """\
Type a message to talk. Commands:
  /plan            how the last prompt's token budget was spent
  /recall [QUERY]  what the last answer recalled (or search memory for QUERY), with dates and scores
  /forget          forget everything remembered about you (asks first)
  /forget session  forget this session only (asks first)
  /export [FILE]   write your memories as JSON lines (default: memstrata-<user>-<time>.jsonl)
  /help            this help
  /quit            leave (Ctrl-D works too); memory stays for next time"""


class ChatSession:
    """The read-eval-print loop over one memory and scope (separate from the CLI for reuse).

    Args:
        memory: the memory (with a model).
        scope: the user, agent and session talked in.
        console: where to print.
        read: reads one line of input (raises EOFError at the end).
    """

    def __init__(
        self, memory: Memory, scope: Scope, console: Console, read: Callable[[str], str] | None = None
    ) -> None:
        self.memory = memory
        self.scope = scope
        self.console = console
        self.read = read or (lambda prompt: console.input(prompt))
        self.last: Reply | None = None

    def run(self) -> None:
        """Talk until /quit or end of input."""
        self.console.print(
            f"memstrata chat: user [bold]{escape(self.scope.user_id)}[/], session {escape(self.scope.session_id)}. "
            "Type /help for commands."
        )
        while True:
            try:
                line = self.read("[bold cyan]you>[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            self.say(line)

    def say(self, text: str) -> None:
        """Answer one message, printing the reply as the model writes it (nothing is stored when
        the model fails)."""
        reply: Reply | None = None
        started = False
        try:
            with self.console.status("recalling..."):
                pieces = self.memory.stream(text, scope=self.scope)
                first = next(pieces)
            for piece in itertools.chain([first], pieces):
                if isinstance(piece, Reply):
                    reply = piece
                    continue
                if not started:
                    self.console.print(Text("memstrata> ", style="bold green"), end="")
                    piece = piece.lstrip()
                    started = True
                self.console.print(piece, end="", markup=False, highlight=False, soft_wrap=True)
        except MemstrataError as exc:
            if started:
                self.console.print()
            self.console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            return
        if not started:
            self.console.print(Text("memstrata> ", style="bold green"), "(no answer)", end="")
        if reply is not None and reply.truncated:
            self.console.print(Text(" [cut at the reply limit: --max-tokens]", style="yellow"), end="")
        self.console.print()
        self.last = reply

    def command(self, line: str) -> bool:
        """Run a slash command; False means quit."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        handlers: dict[str, Callable[[str], None]] = {
            "/plan": self._plan,
            "/recall": self._recall,
            "/forget": self._forget,
            "/export": self._export,
            "/help": lambda _: self.console.print(HELP, highlight=False, markup=False),
        }
        if name in ("/quit", "/exit", "/q"):
            return False
        handler = handlers.get(name)
        if handler is None:
            self.console.print(f"unknown command {name}; /help lists them", markup=False)
            return True
        try:
            handler(argument)
        except MemstrataError as exc:
            self.console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return True

    def _plan(self, _: str) -> None:
        if self.last is None:
            self.console.print("no answer yet in this session: say something first")
            return
        self.console.print(self.last.plan.explain(), highlight=False, markup=False)

    def _recall(self, query: str) -> None:
        if query:
            hits = self.memory.recall(query, scope=self.scope, k=10)
            title = f"memories for {query!r}:"
        elif self.last is not None:
            hits = list(self.last.plan.recalled)
            title = "recalled for the last answer:"
        else:
            self.console.print("nothing recalled yet: say something first, or /recall QUERY")
            return
        if not hits:
            self.console.print("nothing recalled")
            return
        self.console.print(title)
        for hit in hits:
            self.console.print(_hit_line(hit), highlight=False, markup=False)

    def _forget(self, argument: str) -> None:
        session = argument.strip().lower() == "session"
        question = (
            f"Forget this session ({self.scope.session_id})? [y/N] "
            if session
            else f"Forget everything remembered about {self.scope.user_id}? [y/N] "
        )
        answer = self.read(escape(question)).strip().lower()
        if answer not in ("y", "yes"):
            self.console.print("kept")
            return
        if session:
            removed = self.memory.forget_session(scope=self.scope)
        else:
            removed = self.memory.forget(scope=self.scope)
        self.last = None
        self.console.print(f"forgot {removed} memories")

    def _export(self, argument: str) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        path = (
            Path(argument).expanduser() if argument else Path(f"memstrata-{self.scope.user_id}-{stamp}.jsonl")
        )
        count = 0
        with path.open("w", encoding="utf-8") as out:
            for line in self.memory.export(scope=self.scope):
                out.write(line + "\n")
                count += 1
        self.console.print(f"exported {count} memories to {path}", highlight=False, markup=False)


def _hit_line(hit: RecallHit) -> str:
    episode = hit.episode
    who = episode.speaker or episode.role or episode.kind.value
    text = " ".join(episode.text.split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return f"  {format_date(episode.occurred_at)}  score {hit.score:.4f}  [{episode.scope.session_id}] {who}: {text}"


@app.command()
def chat(
    user: Annotated[str | None, typer.Option(help="Whose memory (default: your OS user name).")] = None,
    session: Annotated[str | None, typer.Option(help="Continue this session (default: a new one).")] = None,
    agent: Annotated[
        str, typer.Option(help="The agent id: separate memories for separate assistants.")
    ] = "default",
    model: Annotated[
        Path | None, typer.Option(help="A GGUF file (default: MEMSTRATA_MODEL_PATH or the default model).")
    ] = None,
    n_ctx: Annotated[int | None, typer.Option(help="The model's context window.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the local model.")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 160,
) -> None:
    """Talk with a local assistant that remembers you across restarts."""
    from memstrata.adapters.cli.serve import build_upstream
    from memstrata.adapters.defaults import open_memory

    console = Console()
    try:  # an empty --user is an error, not the OS user
        scope = Scope(
            user_id=getpass.getuser() if user is None else user,
            agent_id=agent,
            session_id=f"chat-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
            if session is None
            else session,
        )
    except InvalidValues as exc:
        problem = exc.errors()[0]
        typer.echo(
            f"memstrata chat: --{problem['loc'][0]}".replace("_id", "") + f": {problem['msg']}", err=True
        )
        raise typer.Exit(2) from None
    config = MemoryConfig(planner=PlannerConfig(reserve_tokens=max_tokens))
    with ExitStack() as stack:
        try:
            with console.status("starting memstrata (database, embedder, model)..."):
                upstream = build_upstream(model=model, n_ctx=n_ctx, threads=threads)
                close = getattr(upstream, "close", None)
                if close is not None:
                    stack.callback(close)
                memory = stack.enter_context(open_memory(model=upstream, config=config))
        except MemstrataError as exc:
            console.print(f"[red]memstrata chat:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from exc
        ChatSession(memory, scope, console).run()
