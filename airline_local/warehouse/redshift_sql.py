"""Redshift SQL for PostgreSQL: splitting, translation (sqlglot), COPY parsing, and a shape check.

sql/ is written in Redshift's SQL. The local warehouse runs the same text on PostgreSQL after
`to_postgres`; the one statement it cannot translate is COPY from S3, which `parse_copy` reads so
the warehouse adapter can load the files itself. PostgreSQL accepts more than Redshift, so
`redshift_shape_violations` flags the PostgreSQL-only forms that would pass locally and fail on AWS.

The schema custom resource's grant statements (stacks/schema_handler/handler.py) go through here
too: the statements sqlglot reads only as an opaque Command (`CALL`, `GRANT ... ON ALL TABLES IN
SCHEMA`, `ALTER DEFAULT PRIVILEGES ... GRANT`, `CREATE USER ... PASSWORD DISABLE`) are recognised by
their Redshift shape (:data:`_COMMAND_SHAPES`) and passed through where PostgreSQL accepts the same
words; `PASSWORD DISABLE` becomes PostgreSQL's `PASSWORD NULL`, also inside the dynamic SQL of a
plpgsql procedure body. Any other Command is refused.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

READ = "redshift"
WRITE = "postgres"
# Statements sqlglot 30.30 parses only as an opaque Command although Redshift and PostgreSQL share
# them word for word: passed through unchanged.
PASS_THROUGH_COMMANDS = {"LOCK"}
COPY_FORMATS = {"PARQUET", "CSV"}
# Redshift statements sqlglot 30.30 reads only as an opaque Command, recognised by their whole text
# (no comment, no string: anything else falls back to sqlglot and is refused). Each is what the
# schema custom resource emits (stacks/schema_handler/handler.py); PostgreSQL takes GRANT and ALTER
# DEFAULT PRIVILEGES in the same words, CALL with its arguments translated, CREATE USER with
# PASSWORD NULL for Redshift's PASSWORD DISABLE (docs/aws-notes.md, "Schema grants on PostgreSQL").
_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_IDENT}(?:\.{_IDENT})?"
_IDENTS = rf"{_IDENT}(?:\s*,\s*{_IDENT})*"
_PRIVILEGE = r"(?:SELECT|INSERT|UPDATE|DELETE|REFERENCES|TRUNCATE|DROP|ALTER|ALL(?:\s+PRIVILEGES)?)"
_PRIVILEGES = rf"{_PRIVILEGE}(?:\s*,\s*{_PRIVILEGE})*"
_COMMAND_SHAPES: dict[str, re.Pattern[str]] = {
    "CALL": re.compile(rf"CALL\s+(?P<name>{_NAME})\s*\((?P<args>.*)\)", re.I | re.S),
    "GRANT": re.compile(rf"GRANT\s+{_PRIVILEGES}\s+ON\s+ALL\s+TABLES\s+IN\s+SCHEMA\s+{_IDENTS}\s+TO\s+{_IDENTS}", re.I),
    "ALTER": re.compile(rf"ALTER\s+DEFAULT\s+PRIVILEGES\s+IN\s+SCHEMA\s+{_IDENTS}\s+GRANT\s+{_PRIVILEGES}"
                        rf"\s+ON\s+TABLES\s+TO\s+{_IDENTS}", re.I),
    "CREATE": re.compile(rf"CREATE\s+USER\s+(?P<user>{_IDENT})\s+PASSWORD\s+DISABLE", re.I),
}
# Redshift words inside dynamic SQL (a plpgsql EXECUTE's string literals) and PostgreSQL's for them.
_DYNAMIC_SQL_REWRITES = ((re.compile(r"\bPASSWORD\s+DISABLE\b", re.I), "PASSWORD NULL"),)
# Redshift physical-design clauses with no PostgreSQL meaning.
_REDSHIFT_ONLY_PROPERTIES = (
    exp.DistKeyProperty,
    exp.DistStyleProperty,
    exp.SortKeyProperty,
    exp.BackupProperty,
)


class RedshiftSqlError(ValueError):
    """A statement that cannot be split, parsed or translated; the message quotes it."""


@dataclass(frozen=True)
class CopyCommand:
    """A Redshift `COPY <table> [(columns)] FROM '<uri>' ... FORMAT AS PARQUET|CSV`."""

    table: str  # as PostgreSQL SQL text, e.g. airline.bookings
    source_uri: str
    format: str  # 'PARQUET' | 'CSV'
    options: dict[str, str | bool] = field(default_factory=dict)  # IAM_ROLE, IGNOREHEADER, ...
    columns: tuple[str, ...] = ()  # explicit column list, empty = all columns by position


def _excerpt(statement: str, limit: int = 160) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def split_statements(sql_text: str) -> list[str]:
    """The statements of a SQL file, without comments around them or the separating ";".

    Uses sqlglot's tokenizer, so a ";" inside a string, a quoted identifier, a $$ body or a
    comment does not split; works for ";" at line end and for a line holding only ";".
    """
    try:
        tokens = Dialect.get_or_raise(READ).tokenize(sql_text)
    except SqlglotError as exc:
        raise RedshiftSqlError(f"cannot tokenize SQL: {exc}") from exc
    statements: list[str] = []
    start: int | None = None
    end = 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            if start is not None:
                statements.append(sql_text[start : end + 1].strip())
            start = None
            continue
        if start is None:
            start = token.start
        end = token.end
    if start is not None:
        statements.append(sql_text[start : end + 1].strip())
    return statements


def _parse_lock(statement: str) -> exp.Command | None:
    """`LOCK [TABLE] t1, t2`: sqlglot 30.30 has no parser for it (it would log a warning and fall
    back to a Command); Redshift and PostgreSQL spell it alike, so check its shape and keep it."""
    dialect = Dialect.get_or_raise(READ)
    tokens = dialect.tokenize(statement)
    if not tokens or tokens[0].token_type != TokenType.LOCK:
        return None
    # The tokenizer keeps everything up to the first ";" as one raw string after LOCK.
    rest = [t for t in tokens[1:] if t.token_type != TokenType.SEMICOLON]
    if len(rest) != 1:
        raise RedshiftSqlError(f"expected one LOCK statement: {_excerpt(statement)}")
    names = dialect.tokenize(rest[0].text)
    if names and names[0].text.upper() == "TABLE":
        names = names[1:]
    allowed = {TokenType.VAR, TokenType.DOT, TokenType.COMMA, TokenType.IDENTIFIER}
    if not names or any(t.token_type not in allowed for t in names):
        raise RedshiftSqlError(f"LOCK takes only table names: {_excerpt(statement)}")
    return exp.Command(this="LOCK", expression=exp.Literal.string(" " + rest[0].text.strip()))


def _parse_shaped_command(statement: str) -> exp.Command | None:
    """A statement of :data:`_COMMAND_SHAPES` as the Command sqlglot would fall back to (without its
    warning), or None."""
    text = statement.strip()
    name = text.split(None, 1)[0].upper() if text else ""
    shape = _COMMAND_SHAPES.get(name)
    if shape is None or not shape.fullmatch(text):
        return None
    return exp.Command(this=name, expression=exp.Literal.string(" " + text[len(name):].strip()))


def parse_redshift(statement: str) -> exp.Expression:
    """Exactly one statement parsed with sqlglot's Redshift dialect."""
    try:
        lock = _parse_lock(statement)
    except SqlglotError as exc:
        raise RedshiftSqlError(f"cannot tokenize SQL ({exc}): {_excerpt(statement)}") from exc
    if lock is not None:
        return lock
    command = _parse_shaped_command(statement)
    if command is not None:
        return command
    try:
        parsed = [e for e in sqlglot.parse(statement, read=READ) if e is not None]
    except SqlglotError as exc:
        raise RedshiftSqlError(f"cannot parse as Redshift SQL ({exc}): {_excerpt(statement)}") from exc
    if len(parsed) != 1:
        raise RedshiftSqlError(f"expected one SQL statement, found {len(parsed)}: {_excerpt(statement)}")
    return parsed[0]


def _command_name(expression: exp.Expression) -> str | None:
    return expression.name.upper() if isinstance(expression, exp.Command) else None


def _fix_merge_insert_values(expression: exp.Expression) -> None:
    """sqlglot 30.30 reads `WHEN NOT MATCHED THEN INSERT VALUES (...)` (no column list) as a
    column tuple holding a function named VALUES and writes `INSERT (VALUES(...))`, which
    PostgreSQL rejects: rebuild it as an INSERT with values only."""
    for when in expression.find_all(exp.When):
        insert = when.args.get("then")
        if not isinstance(insert, exp.Insert) or insert.args.get("expression"):
            continue
        target = insert.this
        if (
            isinstance(target, exp.Tuple)
            and len(target.expressions) == 1
            and isinstance(target.expressions[0], exp.Anonymous)
            and target.expressions[0].name.upper() == "VALUES"
        ):
            values = target.expressions[0].expressions
            insert.set("this", None)
            insert.set("expression", exp.Tuple(expressions=[v.copy() for v in values]))


def _rewrite_dynamic_sql(body: str) -> str:
    """A plpgsql body with Redshift words in its string literals (the SQL an EXECUTE builds at run
    time) rewritten for PostgreSQL; the rest of the body is left as written."""
    tokens = [t for t in Dialect.get_or_raise(WRITE).tokenize(body) if t.token_type == TokenType.STRING]
    for token in reversed(tokens):  # from the end: earlier offsets stay valid
        text = token.text
        for pattern, replacement in _DYNAMIC_SQL_REWRITES:
            text = pattern.sub(replacement, text)
        if text != token.text and body[token.start] == "'" and body[token.end] == "'":
            body = body[: token.start] + "'" + text.replace("'", "''") + "'" + body[token.end + 1 :]
    return body


def _translate_procedure_body(expression: exp.Expression) -> None:
    if not (isinstance(expression, exp.Create) and str(expression.args.get("kind", "")).upper() == "PROCEDURE"):
        return
    body = expression.args.get("expression")
    if isinstance(body, exp.Heredoc) and isinstance(body.this, str):
        body.set("this", _rewrite_dynamic_sql(body.this))


def _translate(expression: exp.Expression) -> exp.Expression:
    for prop in list(expression.find_all(*_REDSHIFT_ONLY_PROPERTIES)):
        prop.pop()
    for constraint in list(expression.find_all(exp.ColumnConstraint)):
        if isinstance(constraint.args.get("kind"), exp.EncodeColumnConstraint):
            constraint.pop()
    _fix_merge_insert_values(expression)
    _translate_procedure_body(expression)
    return expression


def _translate_command(expression: exp.Command, statement: str) -> str:
    """A Command of :data:`_COMMAND_SHAPES` (or LOCK) as PostgreSQL SQL."""
    name = _command_name(expression)
    text = f"{name}{expression.expression.name}" if isinstance(expression.expression, exp.Literal) else statement
    if name in PASS_THROUGH_COMMANDS:
        return expression.sql(dialect=WRITE, comments=False)
    shape = _COMMAND_SHAPES.get(name or "")
    match = shape.fullmatch(text.strip()) if shape is not None else None
    if match is None:
        raise RedshiftSqlError(f"statement not understood by sqlglot's Redshift dialect: {_excerpt(statement)}")
    if name == "CALL":
        return f"CALL {match['name']}({_translate_arguments(match['args'], statement)})"
    if name == "CREATE":
        # Redshift: no password, sign-in by IAM only; PostgreSQL: PASSWORD NULL, password sign-in always fails.
        return f"CREATE USER {match['user']} PASSWORD NULL"
    return text.strip()  # GRANT, ALTER DEFAULT PRIVILEGES: the same words in PostgreSQL


def _translate_arguments(arguments: str, statement: str) -> str:
    """CALL's argument list, each argument translated as an expression."""
    if not arguments.strip():
        return ""
    try:
        parsed = [e for e in sqlglot.parse(f"SELECT {arguments}", read=READ) if e is not None]
    except SqlglotError as exc:
        raise RedshiftSqlError(f"cannot parse the CALL's arguments ({exc}): {_excerpt(statement)}") from exc
    select = parsed[0] if len(parsed) == 1 else None
    if not isinstance(select, exp.Select) or set(k for k, v in select.args.items() if v) - {"expressions", "kind"}:
        raise RedshiftSqlError(f"a CALL's arguments must be expressions: {_excerpt(statement)}")
    return ", ".join(_generate(_translate(e), statement) for e in select.expressions)


def _generate(expression: exp.Expression, statement: str) -> str:
    try:
        return expression.sql(dialect=WRITE, comments=False, unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise RedshiftSqlError(f"cannot translate to PostgreSQL ({exc}): {_excerpt(statement)}") from exc


def _check_translatable(expression: exp.Expression, statement: str) -> None:
    if isinstance(expression, exp.Copy):
        raise RedshiftSqlError(
            f"COPY has no PostgreSQL equivalent; the warehouse loads it (see parse_copy): {_excerpt(statement)}"
        )
    name = _command_name(expression)
    if name is not None and name not in PASS_THROUGH_COMMANDS and name not in _COMMAND_SHAPES:
        raise RedshiftSqlError(f"statement not understood by sqlglot's Redshift dialect: {_excerpt(statement)}")


def to_postgres(statement: str) -> str:
    """One Redshift statement as PostgreSQL SQL (DISTSTYLE/DISTKEY/SORTKEY/ENCODE dropped,
    GETDATE() and friends translated, the schema resource's grant statements as PostgreSQL takes
    them). `:name` placeholders come out as `%(name)s`."""
    expression = parse_redshift(statement)
    _check_translatable(expression, statement)
    if isinstance(expression, exp.Command):
        return _translate_command(expression, statement)
    return _generate(_translate(expression), statement)


def to_postgres_parameterized(statement: str) -> tuple[str, list[str]]:
    """`to_postgres` for psycopg with named parameters: the Data API's `:name` placeholders become
    `%(name)s`, any other `%` is doubled, and the placeholder names are returned in order."""
    expression = parse_redshift(statement)
    _check_translatable(expression, statement)
    if isinstance(expression, exp.Command):  # LOCK, the grant statements: no placeholders
        return _translate_command(expression, statement).replace("%", "%%"), []
    expression = _translate(expression)
    marker = f"airline_param_{uuid.uuid4().hex}_"
    names: list[str] = []
    for placeholder in list(expression.find_all(exp.Placeholder)):
        name = placeholder.name
        if not name:
            raise RedshiftSqlError(f"positional placeholder '?' is not supported, use :name: {_excerpt(statement)}")
        names.append(name)
        placeholder.replace(exp.var(f"{marker}{len(names) - 1}"))
    text = _generate(expression, statement).replace("%", "%%")
    for index, name in enumerate(names):
        text = text.replace(f"{marker}{index}", f"%({name})s", 1)
    return text, names


def parse_copy(statement: str) -> CopyCommand | None:
    """The COPY in a Redshift statement, or None when the statement is not a COPY."""
    try:
        tokens = Dialect.get_or_raise(READ).tokenize(statement)
    except SqlglotError:
        return None
    if not tokens or tokens[0].text.upper() != "COPY":
        return None
    expression = parse_redshift(statement)
    if not isinstance(expression, exp.Copy):
        raise RedshiftSqlError(f"cannot parse COPY: {_excerpt(statement)}")
    if not expression.args.get("kind"):
        raise RedshiftSqlError(f"only COPY ... FROM is supported (use UNLOAD to export): {_excerpt(statement)}")
    target = expression.this
    columns: tuple[str, ...] = ()
    if isinstance(target, exp.Schema):
        columns = tuple(c.name for c in target.expressions)
        target = target.this
    files = expression.args.get("files") or []
    if len(files) != 1 or not (isinstance(files[0], exp.Literal) and files[0].is_string):
        raise RedshiftSqlError(f"COPY needs one quoted source URI: {_excerpt(statement)}")
    options: dict[str, str | bool] = {}
    credentials = expression.args.get("credentials")
    if credentials is not None and credentials.args.get("iam_role") is not None:
        options["IAM_ROLE"] = credentials.args["iam_role"].name
    data_format: str | None = None
    for param in expression.args.get("params") or []:
        key = param.name.upper()
        value = param.args.get("expression")
        if key == "FORMAT":
            data_format = value.name.upper() if value is not None else None
        elif key in COPY_FORMATS and value is None:
            data_format = key
        else:
            options[key] = value.name if value is not None else True
    if data_format not in COPY_FORMATS:
        raise RedshiftSqlError(
            f"COPY format {data_format or 'default (pipe-delimited text)'} is not supported locally, "
            f"use FORMAT AS PARQUET or CSV: {_excerpt(statement)}"
        )
    return CopyCommand(
        table=target.sql(dialect=WRITE),
        source_uri=files[0].name,
        format=data_format,
        options=options,
        columns=columns,
    )


def redshift_shape_violations(statement: str) -> list[str]:
    """PostgreSQL-only forms in a statement that Redshift would reject (empty when none found).

    Covers what a PostgreSQL stand-in would silently accept: MERGE beyond Redshift's subset
    (r_MERGE: condition on WHEN MATCHED, alias on the target, a missing or repeated clause, BY
    SOURCE, a non-equality ON, a source that is not a table (subquery, CTE), a WITH clause, target
    columns qualified with a table name, the same table as source and target, WHEN MATCHED other
    than UPDATE/DELETE, WHEN NOT MATCHED other than INSERT), ON CONFLICT, RETURNING, DISTINCT ON;
    and statements sqlglot's Redshift dialect cannot parse, parses only as a generic Command
    (anywhere in the tree), or does not read back the same after writing them as Redshift SQL.
    Not checked: MERGE ... REMOVE DUPLICATES (valid Redshift, but sqlglot 30 cannot parse it, so
    it is reported as unparsed; sql/ does not use it).
    """
    try:
        expression = parse_redshift(statement)
    except RedshiftSqlError as exc:
        return [str(exc)]
    problems: list[str] = []
    name = _command_name(expression)
    if name is not None and name not in PASS_THROUGH_COMMANDS:
        problems.append(f"not parsed by sqlglot's Redshift dialect (statement {name})")
    if name is None:
        problems.extend(_round_trip_violations(expression))
    if expression.find(exp.OnConflict):
        problems.append("ON CONFLICT is PostgreSQL only (Redshift: MERGE)")
    if expression.find(exp.Returning):
        problems.append("RETURNING is PostgreSQL only")
    for distinct in expression.find_all(exp.Distinct):
        if distinct.args.get("on") is not None:
            problems.append("DISTINCT ON is PostgreSQL only")
    for merge in expression.find_all(exp.Merge):
        problems.extend(_merge_violations(merge))
    return problems


def _round_trip_violations(expression: exp.Expression) -> list[str]:
    """A statement sqlglot parsed only in part (a generic Command inside it), or that reads back
    differently once written as Redshift SQL, is not known to be Redshift SQL."""
    problems = [f"part of the statement is not parsed by sqlglot's Redshift dialect ({c.name.upper()} ...)"
                for c in expression.find_all(exp.Command)]
    written = expression.sql(dialect=READ)
    try:
        again = sqlglot.parse_one(written, read=READ)
    except SqlglotError as exc:
        return [*problems, f"sqlglot's Redshift SQL for the statement does not parse back ({exc})"]
    if again != expression:
        problems.append(f"the statement does not round-trip through sqlglot's Redshift dialect: {_excerpt(written)}")
    return problems


def _merge_violations(merge: exp.Merge) -> list[str]:
    problems: list[str] = []
    if merge.this.args.get("alias") is not None:
        problems.append("MERGE target table has an alias (Redshift allows an alias on the source only)")
    source = merge.args.get("using")
    if not isinstance(source, exp.Table):
        problems.append("MERGE source must be a table (Redshift allows no subquery or VALUES as source)")
    elif isinstance(merge.this, exp.Table) and _table_name(source) == _table_name(merge.this):
        problems.append("MERGE source and target are the same table")
    if merge.args.get("with_") is not None:
        problems.append("MERGE with a WITH clause (Redshift's source must be a table, not a CTE)")
    condition = merge.args.get("on")
    conjuncts = list(condition.flatten()) if isinstance(condition, exp.And) else [condition]
    if any(not isinstance(c, exp.EQ) for c in conjuncts):
        problems.append("MERGE ON must be equality predicates joined by AND")
    whens = merge.args.get("whens")
    clauses = whens.expressions if whens is not None else []
    matched = [w for w in clauses if w.args.get("matched")]
    not_matched = [w for w in clauses if not w.args.get("matched")]
    if any(w.args.get("source") for w in clauses):
        problems.append("WHEN NOT MATCHED BY SOURCE is not in Redshift's MERGE")
    if any(w.args.get("condition") is not None for w in clauses):
        problems.append("MERGE WHEN clause has an AND condition (Redshift allows none)")
    if len(matched) != 1 or len(not_matched) != 1:
        problems.append("Redshift's MERGE needs exactly one WHEN MATCHED and one WHEN NOT MATCHED clause")
    for when in matched:
        then = when.args.get("then")
        if not (isinstance(then, exp.Update) or (isinstance(then, exp.Var) and then.name.upper() == "DELETE")):
            problems.append("WHEN MATCHED must be THEN UPDATE or THEN DELETE")
    for when in not_matched:
        if not isinstance(when.args.get("then"), exp.Insert):
            problems.append("WHEN NOT MATCHED must be THEN INSERT")
    if any(c.table for c in _target_columns(clauses)):
        problems.append("MERGE target column named with its table (Redshift: no table name on a target column)")
    return problems


def _table_name(table: exp.Table) -> str:
    return ".".join(part.name.lower() for part in table.parts)


def _target_columns(clauses: list[exp.Expression]) -> list[exp.Column]:
    """The columns a MERGE writes: UPDATE SET left-hand sides and the INSERT column list."""
    columns: list[exp.Column] = []
    for when in clauses:
        then = when.args.get("then")
        if isinstance(then, exp.Update):
            columns += [eq.this for eq in then.expressions if isinstance(eq, exp.EQ) and isinstance(eq.this, exp.Column)]
        elif isinstance(then, exp.Insert) and isinstance(then.this, (exp.Tuple, exp.Schema)):
            # INSERT VALUES (...) without a column list reads as a tuple holding VALUES(...)
            columns += [c for c in then.this.expressions if isinstance(c, exp.Column)]
    return columns
