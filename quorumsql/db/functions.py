"""Which SQL functions a candidate may call: each dialect's read-only built-ins, and no others.

A ``SELECT f()`` runs whatever ``f`` does: a stored function of the database, an extension's
function (dblink, adminpack) or a built-in that reads files or signals other sessions can write,
read the server's disk or change the server, inside a read-only-looking query. So the rule is an
allowlist, not a deny-list: a call is allowed when its name is one of the dialect's built-in
functions below, all of which only compute a value from their arguments or the rows read (string,
number, date, JSON, array, aggregate and window functions, type conversions), or when the user
named it in ``Settings.allowed_functions`` (their own read-only routines). Anything else is
refused with its name in the reason, by the read-only check (:mod:`quorumsql.db.safety`, on
sqlglot's tokens) and again by each connector on its own reading of the text (the SQLite
authorizer, the MySQL and PostgreSQL lexical guards).

Deliberately absent: functions that read or write files (``load_file``, ``pg_read_file``,
``pg_file_write``, ``readfile``, ``lo_import``), run SQL given as text (``dblink*``,
``query_to_xml``), take locks or signal sessions (``get_lock``, ``pg_advisory_lock``,
``pg_terminate_backend``), change settings or sequences (``set_config``, ``nextval``), or load
code (``load_extension``). Sleeping functions (``sleep``, ``pg_sleep``, ``benchmark``) stay: the
statement time limit bounds them. :data:`NEVER_ALLOWED` names the dangerous built-ins, which
``allowed_functions`` cannot permit.
"""

from __future__ import annotations

from collections.abc import Iterable

from quorumsql.errors import UnsafeSQLError


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Standard SQL and shared by the three engines (aggregates, windows, conditionals, math).
_COMMON = _names("""
    count sum avg min max coalesce nullif abs round floor ceil ceiling sign sqrt exp ln log log10
    power pow mod pi sin cos tan asin acos atan atan2 cot degrees radians greatest least
    row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
    nth_value lower upper length trim ltrim rtrim replace substr substring cast
""")

SQLITE_FUNCTIONS = _COMMON | _names("""
    changes char concat concat_ws date datetime format glob group_concat hex ifnull iif instr
    json json_array json_array_length json_each json_error_position json_extract json_group_array
    json_group_object json_insert json_object json_patch json_quote json_remove json_replace
    json_set json_tree json_type json_valid jsonb jsonb_array jsonb_extract jsonb_group_array
    jsonb_group_object jsonb_insert jsonb_object jsonb_patch jsonb_remove jsonb_replace jsonb_set
    julianday last_insert_rowid like likelihood likely log2 octet_length printf quote random
    randomblob sqlite_compileoption_get sqlite_compileoption_used sqlite_source_id sqlite_version
    strftime string_agg subtype time timediff total total_changes trunc typeof unhex unicode
    unixepoch unlikely zeroblob acosh asinh atanh cosh sinh tanh median
    bm25 highlight snippet offsets matchinfo match
    pragma_table_info pragma_table_xinfo pragma_index_list pragma_index_info pragma_index_xinfo
    pragma_foreign_key_list pragma_table_list
""")

MYSQL_FUNCTIONS = _COMMON | _names("""
    group_concat std stddev stddev_pop stddev_samp variance var_pop var_samp bit_and bit_or
    bit_xor bit_count json_arrayagg json_objectagg any_value
    ascii bin bit_length char char_length character_length chr concat concat_ws elt export_set
    field find_in_set format from_base64 to_base64 hex unhex insert instr lcase left locate lpad
    make_set mid octet_length oct ord position quote regexp_like regexp_replace regexp_instr
    regexp_substr repeat reverse right rpad soundex space strcmp substring_index ucase
    weight_string natural_sort_key sformat
    conv crc32 div rand truncate
    adddate addtime convert_tz curdate current_date current_time current_timestamp curtime date
    date_add date_format date_sub datediff day dayname dayofmonth dayofweek dayofyear extract
    from_days from_unixtime get_format hour last_day localtime localtimestamp makedate maketime
    microsecond minute month monthname now period_add period_diff quarter sec_to_time second
    str_to_date subdate subtime sysdate time time_format time_to_sec timediff timestamp
    timestampadd timestampdiff to_days to_seconds unix_timestamp utc_date utc_time utc_timestamp
    week weekday weekofyear year yearweek add_months months_between grouping match
    if ifnull isnull interval convert binary
    json_array json_object json_extract json_unquote json_contains json_contains_path json_keys
    json_length json_type json_valid json_search json_value json_query json_quote json_set
    json_insert json_replace json_remove json_merge json_merge_patch json_merge_preserve
    json_depth json_pretty json_table json_overlaps json_detailed json_compact json_loose
    json_exists json_array_append json_array_insert json_equals json_normalize json_schema_valid
    uuid uuid_short version database schema user current_user session_user system_user
    connection_id found_rows row_count last_insert_id charset collation coercibility inet_aton
    inet_ntoa inet6_aton inet6_ntoa md5 sha sha1 sha2 uncompress uncompressed_length
    sleep benchmark values default
    decimal signed unsigned integer int float double real
""")

POSTGRES_FUNCTIONS = _COMMON | _names("""
    string_agg array_agg bool_and bool_or every bit_and bit_or bit_xor stddev stddev_pop
    stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_avgx regr_avgy
    regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy percentile_cont
    percentile_disc mode json_agg jsonb_agg json_object_agg jsonb_object_agg grouping
    ascii bit_length btrim char_length character_length chr concat concat_ws format initcap left
    lpad md5 octet_length overlay position quote_ident quote_literal quote_nullable
    regexp_count regexp_instr regexp_like regexp_match regexp_matches regexp_replace
    regexp_split_to_array regexp_split_to_table regexp_substr repeat reverse right rpad
    split_part starts_with strpos to_hex translate unistr encode decode string_to_array
    array_to_string string_to_table sha224 sha256 sha384 sha512 to_ascii normalize casefold
    convert_from convert_to convert
    cbrt div factorial gcd lcm scale trunc width_bucket random min_scale trim_scale sinh cosh
    tanh asinh acosh atanh sind cosd tand asind acosd atand atan2d cotd erf erfc
    age clock_timestamp date_bin date_part date_trunc extract isfinite justify_days
    justify_hours justify_interval make_date make_interval make_time make_timestamp
    make_timestamptz now statement_timestamp timeofday transaction_timestamp to_char to_date
    to_number to_timestamp timezone num_nulls num_nonnulls
    array_append array_cat array_dims array_fill array_length array_lower array_ndims
    array_position array_positions array_prepend array_remove array_replace array_to_json
    array_upper array_sample array_shuffle trim_array cardinality unnest generate_series
    generate_subscripts
    to_json to_jsonb json_build_array json_build_object jsonb_build_array jsonb_build_object
    json_object jsonb_object json_array_length jsonb_array_length json_each jsonb_each
    json_each_text jsonb_each_text json_extract_path json_extract_path_text jsonb_extract_path
    jsonb_extract_path_text json_object_keys jsonb_object_keys json_array_elements
    jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_typeof
    jsonb_typeof json_strip_nulls jsonb_strip_nulls jsonb_set jsonb_set_lax jsonb_insert
    jsonb_pretty jsonb_path_query jsonb_path_exists jsonb_path_match jsonb_path_query_array
    jsonb_path_query_first row_to_json json_to_record json_to_recordset jsonb_to_record
    jsonb_to_recordset json_populate_record jsonb_populate_record json_scalar json_serialize
    to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank
    ts_rank_cd ts_headline
    version current_database current_schema current_schemas pg_typeof format_type
    gen_random_uuid pg_sleep pg_sleep_for row system bernoulli
    int int2 int4 int8 integer smallint bigint float4 float8 numeric decimal real text varchar
    char bpchar date time timestamp timestamptz interval bool boolean json jsonb uuid money
""")

# DuckDB: the pure scalar, aggregate, window and list/struct/map/JSON functions of DuckDB 1.x-2.x,
# the set-returning range / generate_series / unnest / json_each / json_tree, and words of
# DuckDB's own syntax that stand before "(" without calling anything (``* EXCLUDE (a)``,
# ``* RENAME (...)``, ``UNION BY NAME (...)``, ``COLUMNS(*)``, ``TRY_CAST(x AS t)``,
# ``USING SAMPLE reservoir(10)``). Everything that reads files or runs SQL text is in
# NEVER_ALLOWED["duckdb"] below; settings, catalogs, secrets and logs are simply not listed.
DUCKDB_FUNCTIONS = _COMMON | _names("""
    any_value approx_count_distinct approx_quantile approx_top_k arbitrary arg_max arg_max_null
    arg_max_nulls_last arg_min arg_min_null arg_min_nulls_last argmax argmin array_agg
    bit_and bit_or bit_xor bitstring_agg bool_and bool_or corr count_if count_star countif
    covar_pop covar_samp entropy favg first fsum group_concat histogram histogram_exact
    kahan_sum kurtosis kurtosis_pop last list listagg mad max_by mean median min_by mode product
    quantile quantile_cont quantile_disc regr_avgx regr_avgy regr_count regr_intercept regr_r2
    regr_slope regr_sxx regr_sxy regr_syy reservoir_quantile sem skewness stddev stddev_pop
    stddev_samp string_agg sumkahan var_pop var_samp variance weighted_avg wavg geomean
    geometric_mean grouping grouping_id
    fill rank_dense
    ascii bar base64 bit_length chr concat concat_ws contains damerau_levenshtein editdist3
    ends_with format from_base64 hamming instr jaccard jaro_similarity jaro_winkler_similarity
    lcase left left_grapheme len length_grapheme levenshtein like_escape ilike_escape
    not_like_escape not_ilike_escape lpad md5 md5_number md5_number_lower md5_number_upper
    mismatches nfc_normalize octet_length ord position prefix printf regexp_escape
    regexp_extract regexp_extract_all regexp_full_match regexp_matches regexp_replace
    regexp_split_to_array regexp_split_to_table repeat reverse right right_grapheme rpad sha1
    sha256 split split_part starts_with str_split str_split_regex string_split
    string_split_regex string_to_array strip_accents strlen strpos substring_grapheme suffix
    to_base64 translate ucase unicode url_decode url_encode hash hex unhex bin unbin from_hex
    to_hex to_binary from_binary encode decode format_bytes formatreadabledecimalsize
    formatreadablesize parse_formatted_bytes to_base overlay
    add cbrt divide even factorial fdiv fmod gamma gcd greatest_common_divisor isfinite isinf
    isnan lcm least_common_multiple lgamma log2 multiply nextafter random round_even
    roundbankers signbit subtract trunc xor bit_count get_bit set_bit bit_position bitstring
    equi_width_bins
    age ago century current_date current_localtime current_localtimestamp date_add date_diff
    date_part date_sub date_trunc datediff datepart datesub datetrunc day dayname dayofmonth
    dayofweek dayofyear days_in_month decade epoch epoch_ms epoch_ns epoch_us era extract
    get_current_time get_current_timestamp hour isodow isoyear julian last_day make_date
    make_time make_timestamp make_timestamp_ms make_timestamp_ns make_timestamptz microsecond
    millennium millisecond minute month monthname nanosecond normalized_interval now quarter
    second strftime strptime time_bucket timezone timezone_hour timezone_minute to_centuries
    to_days to_decades to_hours to_microseconds to_millennia to_milliseconds to_minutes
    to_months to_quarters to_seconds to_timestamp to_weeks to_years today
    transaction_timestamp try_strptime week weekday weekofyear year yearweek
    array_aggr array_aggregate array_apply array_append array_cat array_concat array_contains
    array_cosine_distance array_cosine_similarity array_cross_product array_distance
    array_distinct array_dot_product array_extract array_filter array_grade_up array_has
    array_has_all array_has_any array_indexof array_inner_product array_intersect array_length
    array_negative_dot_product array_negative_inner_product array_pop_back array_pop_front
    array_position array_prepend array_push_back array_push_front array_reduce array_resize
    array_reverse array_reverse_sort array_select array_slice array_sort array_to_json
    array_to_string array_transform array_unique array_value array_where array_zip
    list_aggr list_aggregate list_any_value list_append list_apply list_approx_count_distinct
    list_avg list_bit_and list_bit_or list_bit_xor list_bool_and list_bool_or list_cat
    list_concat list_contains list_cosine_distance list_cosine_similarity list_count
    list_distance list_distinct list_dot_product list_element list_entropy list_extract
    list_filter list_first list_grade_up list_has list_has_all list_has_any list_histogram
    list_indexof list_inner_product list_intersect list_kurtosis list_kurtosis_pop list_last
    list_mad list_max list_median list_min list_mode list_negative_dot_product
    list_negative_inner_product list_pack list_position list_prepend list_product list_reduce
    list_resize list_reverse list_reverse_sort list_select list_sem list_skewness list_slice
    list_sort list_stddev_pop list_stddev_samp list_string_agg list_sum list_transform
    list_unique list_value list_var_pop list_var_samp list_where list_zip
    flatten generate_series range unnest apply reduce cardinality element_at grade_up
    map map_concat map_contains map_contains_entry map_contains_value map_entries map_extract
    map_extract_value map_from_entries map_keys map_values struct_concat struct_contains
    struct_extract struct_extract_at struct_has struct_indexof struct_insert struct_keys
    struct_pack struct_position struct_update struct_values row union_extract union_tag
    union_value
    json json_array json_array_length json_contains json_deep_merge json_exists json_extract
    json_extract_path json_extract_path_text json_extract_string json_group_array
    json_group_object json_group_structure json_insert json_keys json_merge_patch
    json_normalize json_object json_pretty json_quote json_remove json_replace json_set
    json_strip_nulls json_structure json_transform json_transform_strict json_type json_valid
    json_value to_json from_json from_json_strict row_to_json json_each json_tree
    if ifnull typeof gen_random_uuid uuid uuidv4 uuidv7 uuid_extract_timestamp
    uuid_extract_version enum_code enum_first enum_last enum_range enum_range_boundary
    sleep_ms pg_sleep
    try_cast try columns unpack exclude rename name interval struct reservoir bernoulli system
    pivot unpivot
    date time timestamp timestamptz decimal numeric integer int bigint smallint tinyint hugeint
    double float real varchar text boolean bool blob uuid
""")

# Built-ins that read or write files, run SQL given as text, take locks, signal other sessions,
# change settings or sequences, or load code. Never allowed, not even by allowed_functions.
NEVER_ALLOWED: dict[str, frozenset[str]] = {
    "sqlite": _names("""
        load_extension readfile writefile fts3_tokenizer edit fsdir zipfile sqlar_compress
        sqlar_uncompress sqlite_log fts5
    """),
    "mysql": _names("""
        load_file get_lock release_lock release_all_locks is_free_lock is_used_lock
        master_pos_wait master_gtid_wait source_pos_wait wait_for_executed_gtid_set
        wait_until_sql_thread_after_gtids nextval setval lastval sys_exec sys_eval
    """),
    "postgres": _names("""
        pg_read_file pg_read_binary_file pg_stat_file pg_ls_dir pg_ls_logdir pg_ls_waldir
        pg_ls_tmpdir pg_ls_archive_statusdir pg_file_write pg_file_rename pg_file_unlink
        pg_file_sync pg_logdir_ls lo_import lo_export lo_unlink lo_create lo_creat lo_open
        lo_put lo_get lo_from_bytea loread lowrite set_config
        pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile pg_switch_wal
        pg_promote pg_logical_emit_message pg_notify nextval setval currval lastval
        dblink dblink_exec dblink_connect dblink_connect_u dblink_send_query dblink_open
        dblink_fetch query_to_xml query_to_xml_and_xmlschema cursor_to_xml
        pg_advisory_lock pg_advisory_xact_lock pg_try_advisory_lock pg_advisory_lock_shared
        pg_import_system_collations txid_current pg_current_xact_id
    """),
    "duckdb": _names("""
        read_csv read_csv_auto read_single_csv_file read_parquet parquet_scan
        read_single_parquet_file parquet_metadata parquet_schema parquet_file_metadata
        parquet_full_metadata parquet_kv_metadata parquet_page_index parquet_bloom_probe
        read_json read_json_auto read_json_objects read_json_objects_auto read_ndjson
        read_ndjson_auto read_ndjson_objects read_single_json_file read_text read_blob
        read_duckdb read_xlsx read_file glob sniff_csv query query_table
        json_execute_serialized_sql json_serialize_sql json_deserialize_sql json_serialize_plan
        arrow_scan arrow_scan_dumb pandas_scan python_arrow_scan python_map_function seq_scan
        sqlite_scan sqlite_attach postgres_scan postgres_attach postgres_query mysql_scan
        mysql_query iceberg_scan iceberg_metadata delta_scan http_get http_post
        checkpoint force_checkpoint enable_logging disable_logging enable_profiling
        disable_profiling truncate_duckdb_logs add_grammar_extension remove_grammar_extension
        create_external_resource register_external_resource deregister_external_resource
        destroy_external_resource register_external_resource_type
        duckdb_secrets which_secret duckdb_settings current_setting getenv setseed nextval
        currval setval write_log txid_current
    """),
}

BUILTIN_FUNCTIONS: dict[str, frozenset[str]] = {
    "sqlite": SQLITE_FUNCTIONS,
    "mysql": MYSQL_FUNCTIONS,
    "postgres": POSTGRES_FUNCTIONS,
    "duckdb": DUCKDB_FUNCTIONS,
}

_ALIASES = {"mariadb": "mysql", "postgresql": "postgres"}


def decode_unicode_name(body: str) -> str:
    """The name a PostgreSQL ``U&"..."`` identifier spells, for a refusal's reason.

    ``\\XXXX`` and ``\\+XXXXXX`` are code points, ``\\\\`` is a backslash (the default escape
    character); anything malformed is kept as written.
    """
    out, i = [], 0
    while i < len(body):
        if body.startswith("\\\\", i):
            out.append("\\")
            i += 2
            continue
        for width, skip in ((6, 2), (4, 1)):
            digits = body[i + skip:i + skip + width]
            if body.startswith("\\+" if skip == 2 else "\\", i) and len(digits) == width and all(
                c in "0123456789abcdefABCDEF" for c in digits
            ):
                out.append(chr(int(digits, 16)) if int(digits, 16) <= 0x10FFFF else "?")
                i += skip + width
                break
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


def dialect_key(dialect: str) -> str:
    """The key of :data:`BUILTIN_FUNCTIONS` for a sqlglot dialect name (``mariadb`` -> ``mysql``).

    Raises:
        ValueError: the dialect has no function table.
    """
    key = _ALIASES.get(dialect.lower(), dialect.lower())
    if key not in BUILTIN_FUNCTIONS:
        raise ValueError(f"no function allowlist for the dialect {dialect!r}")
    return key


def normalize_names(names: Iterable[str] | None) -> frozenset[str]:
    """User-permitted function names, lower-cased and stripped (``schema.name`` kept whole).

    Raises:
        TypeError: ``names`` is a single string or holds something that is not a string.
    """
    if names is None:
        return frozenset()
    if isinstance(names, str):
        raise TypeError("allowed_functions must be a list of function names, not one string")
    out = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"allowed_functions holds {name!r}; expected function names (str)")
        if name.strip():
            out.add(name.strip().lower())
    return frozenset(out)


def allowed_functions(dialect: str, extra: Iterable[str] = ()) -> frozenset[str]:
    """Lower-case names of the functions a candidate may call unqualified on ``dialect``.

    Args:
        dialect: ``sqlite``, ``mysql`` / ``mariadb`` or ``postgres`` / ``postgresql``.
        extra: names the user permits (``Settings.allowed_functions``); those in
            :data:`NEVER_ALLOWED` are ignored.

    Raises:
        ValueError: unknown dialect.
    """
    key = dialect_key(dialect)
    return BUILTIN_FUNCTIONS[key] | (normalize_names(extra) - NEVER_ALLOWED[key])


def function_refusal(
    name: str,
    dialect: str,
    *,
    qualifier: str | None = None,
    extra: Iterable[str] = (),
) -> str | None:
    """Why a call of ``[qualifier.]name(...)`` is refused, or None when it is allowed.

    Unqualified names are compared case-insensitively with :func:`allowed_functions`.
    A schema-qualified call is allowed only when the user permitted ``qualifier.name``, or on
    PostgreSQL when the qualifier is ``pg_catalog`` and the name is an allowed built-in.

    Args:
        name: the function name as the server reads it (quotes removed).
        dialect: see :func:`allowed_functions`.
        qualifier: the schema (or database) name before the dot, if any.
        extra: user-permitted names.

    Returns:
        A one-line reason naming the function, or None.
    """
    key = dialect_key(dialect)
    low = name.lower()
    permitted = normalize_names(extra)
    full = f"{qualifier}.{name}" if qualifier else name
    if low in NEVER_ALLOWED[key]:
        return (
            f"the function {full}() is not allowed: it reads or writes files, runs SQL text, "
            "takes locks or changes server state"
        )
    if qualifier is not None:
        q = qualifier.lower()
        if f"{q}.{low}" in permitted:
            return None
        if key == "postgres" and q == "pg_catalog" and low in BUILTIN_FUNCTIONS[key]:
            return None
    elif low in BUILTIN_FUNCTIONS[key] or low in permitted:
        return None
    return (
        f"the function {full}() is not allowed: only the dialect's read-only built-in functions "
        "may be called (Settings.allowed_functions permits your own read-only functions)"
    )


# Words that may stand right before "(" without calling anything: operators, clauses and
# set-operation keywords ("IN (", "EXISTS (", "OVER (", "AS (", "JOIN (", "FOR (" ...). Only
# unquoted words count: a quoted "exists"(...) is a call of a function named exists.
STRUCTURAL_WORDS = _names("""
    and or xor not in exists any all some values over filter using on as is like ilike glob
    regexp rlike similar to escape between when then else case select from join where having
    by union intersect except minus distinct distinctrow limit offset with recursive lateral
    only group within materialized for first next sets cube rollup array against index key
    varying precision zone return
""")
_CTE_BODY_STARTS = {"select", "with", "values", "table", "("}

def quoted_run(sql: str, start: int, quote: str, backslash: bool) -> tuple[int, str]:
    """End index (just past the closing quote) and content of a quoted run opening at ``start``.

    For the connectors' lexers of PostgreSQL and DuckDB: a doubled quote stands for itself; with
    ``backslash`` (``E'...'`` strings) a backslash escapes the next character. An unterminated
    run ends the text.
    """
    j, buf, n = start + 1, [], len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\" and j + 1 < n:
            buf.append(sql[j:j + 2])
            j += 2
        elif ch == quote and j + 1 < n and sql[j + 1] == quote:
            buf.append(quote)
            j += 2
        elif ch == quote:
            return j + 1, "".join(buf)
        else:
            buf.append(ch)
            j += 1
    return n, "".join(buf)


def nested_comment_end(sql: str, start: int) -> int:
    """Index just past the ``/* ... */`` comment opening at ``start``, comments nesting as
    PostgreSQL and DuckDB read them (the end of the text when it is not closed)."""
    depth, j, n = 1, start + 2, len(sql)
    while j < n and depth:
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
        else:
            j += 1
    return j


# A token as the server reads it: (kind, value). kind is "word" (unquoted name or keyword, as
# written), "quoted" (a quoted name, quotes removed), "string", "number" or "symbol" (the
# symbol's text: "(", ")", ",", ".", "::", ...).
Token = tuple[str, str]


def _close_paren(tokens: list[Token], i: int) -> int:
    """Index of the ")" matching the "(" at ``i`` (len(tokens) when unbalanced)."""
    depth = 0
    for j in range(i, len(tokens)):
        kind, value = tokens[j]
        if kind == "symbol" and value == "(":
            depth += 1
        elif kind == "symbol" and value == ")":
            depth -= 1
            if depth == 0:
                return j
    return len(tokens)


def _is_cte_header(tokens: list[Token], i: int) -> bool:
    """Whether ``name (a, b) AS [NOT] [MATERIALIZED] (SELECT ...`` starts at ``i``: the column
    list of a WITH query, not a call (a call's ``)`` is never followed by ``AS (SELECT``)."""
    prev = tokens[i - 1] if i > 0 else ("symbol", "")
    if not (prev == ("symbol", ",") or (prev[0] == "word" and prev[1].lower() in ("with", "recursive"))):
        return False
    close = _close_paren(tokens, i + 1)
    if close >= len(tokens):
        return False
    if any(k not in ("word", "quoted") and (k, v) != ("symbol", ",") for k, v in tokens[i + 2:close]):
        return False
    j = close + 1
    if j >= len(tokens) or tokens[j][0] != "word" or tokens[j][1].lower() != "as":
        return False
    j += 1
    while j < len(tokens) and tokens[j][0] == "word" and tokens[j][1].lower() in ("not", "materialized"):
        j += 1
    if j + 1 >= len(tokens) or tokens[j] != ("symbol", "("):
        return False
    kind, value = tokens[j + 1]
    return (kind == "word" and value.lower() in _CTE_BODY_STARTS) or (kind, value) == ("symbol", "(")


def _names_only(tokens: list[Token], open_paren: int) -> bool:
    """Whether the parentheses opening at ``open_paren`` hold names and commas only."""
    close = _close_paren(tokens, open_paren)
    return close < len(tokens) and all(
        k in ("word", "quoted") or (k, v) == ("symbol", ",") for k, v in tokens[open_paren + 1:close]
    )


def function_calls(tokens: list[Token], *, alias_lists: bool = False) -> list[tuple[str | None, str]]:
    """Every ``[qualifier.]name(`` in ``tokens`` that calls a function, as (qualifier, name).

    Not calls: structural words (:data:`STRUCTURAL_WORDS`, unquoted), a name right after
    ``AS`` or ``::`` (an alias's column list, a type's length) and the column list of a WITH
    query; with ``alias_lists`` (DuckDB), also an unquoted name right after ``)`` whose
    parentheses hold names only (``FROM range(3) t(x)``, ``FROM (SELECT 1) s(a)``). Everything
    else before "(" is a call, quoted or not.
    """
    calls: list[tuple[str | None, str]] = []
    for i in range(len(tokens) - 1):
        kind, value = tokens[i]
        if tokens[i + 1] != ("symbol", "(") or kind not in ("word", "quoted"):
            continue
        if kind == "word" and value.lower() in STRUCTURAL_WORDS:
            continue
        prev = tokens[i - 1] if i > 0 else ("symbol", "")
        if (prev[0] == "word" and prev[1].lower() == "as") or prev == ("symbol", "::"):
            continue
        if alias_lists and kind == "word" and prev == ("symbol", ")") and _names_only(tokens, i + 1):
            continue
        if _is_cte_header(tokens, i):
            continue
        qualifier = None
        if prev == ("symbol", ".") and i >= 2 and tokens[i - 2][0] in ("word", "quoted"):
            qualifier = tokens[i - 2][1]
        calls.append((qualifier, value))
    return calls


def refused_call(tokens: list[Token], dialect: str, extra: Iterable[str] = ()) -> str | None:
    """The reason the first refused call in ``tokens`` is refused (:func:`function_refusal`),
    or None when every call is allowed."""
    for qualifier, name in function_calls(tokens, alias_lists=dialect_key(dialect) == "duckdb"):
        reason = function_refusal(name, dialect, qualifier=qualifier, extra=extra)
        if reason:
            return reason
    return None


_READ_STARTS = {"select", "with", "values", "table"}


def guard_tokens(
    tokens: list[Token], dialect: str, *, server: str, forbidden_words: Iterable[str],
    allowed: Iterable[str] = (),
) -> None:
    """The connectors' own refusal over their lexer's tokens (the second lock, after the check).

    The statement must start like a query (``SELECT``, ``WITH``, ``VALUES``, ``TABLE`` or
    ``(``), hold one statement (trailing ``;`` ignored), contain none of ``forbidden_words``
    unquoted, and call only allowed functions (:func:`refused_call`).

    Args:
        tokens: the server-faithful tokens of one statement.
        dialect: the function table to use.
        server: the server's name for the messages ("MySQL", "PostgreSQL").
        forbidden_words: upper-case words that write (``INTO``, ``OUTFILE``).
        allowed: user-permitted function names.

    Raises:
        UnsafeSQLError: the statement is refused; the reason starts "refused by the connection".
    """
    tokens = list(tokens)
    while tokens and tokens[-1] == ("symbol", ";"):
        tokens.pop()
    first = tokens[0] if tokens else ("word", "nothing")
    if not (first == ("symbol", "(") or (first[0] == "word" and first[1].lower() in _READ_STARTS)):
        raise UnsafeSQLError(
            f"refused by the connection: only read queries run on {server}, got {first[1].upper()}"
        )
    words = {w.upper() for w in forbidden_words}
    for kind, value in tokens:
        if (kind == "word" and value.upper() in words) or (kind, value) == ("symbol", ";"):
            raise UnsafeSQLError(f"refused by the connection: {value.upper()} is not allowed in a read query")
    reason = refused_call(tokens, dialect, allowed)
    if reason:
        raise UnsafeSQLError(f"refused by the connection: {reason}")


# -- DuckDB replacement scans -------------------------------------------------------------------

# Characters DuckDB turns into spaces before parsing (outside what it takes for quotes and "--"
# comments); to its lexer any other character from U+0080 on is a name character. Both the check
# and the DuckDB connector's guard refuse them outside strings and quoted names.
DUCKDB_UNICODE_SPACES = frozenset(
    "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u200b\u202f\u205f\u2060\u3000\ufeff"
)

# DuckDB reads a file when a table name it does not know looks like one ("replacement scans"):
# FROM 'data.csv', FROM "/etc/passwd.csv", FROM '*.parquet', and even the unquoted FROM sales.csv
# (schema "sales", table "csv": not found, so ./sales.csv is read). These words put a name in a
# table position; so does a comma in a FROM list.
_TABLE_WORDS = {"from", "join", "pivot", "unpivot", "describe", "summarize", "show"}
# Words that end a FROM list at their parenthesis level.
_FROM_ENDS = {
    "select", "where", "group", "having", "order", "limit", "offset", "qualify", "window", "union",
    "intersect", "except", "returning", "values", "with",
}
# Last parts of a dotted name that make DuckDB take it for a file (formats and compressions).
FILE_SUFFIXES = _names("""
    csv tsv tbl txt dat parquet pq json jsonl ndjson geojson gz gzip zst zstd bz2 xz lz4 snappy
    xlsx xls arrow feather ipc avro orc duckdb ddb db sqlite sqlite3 wal
""")
_PATH_CHARS = frozenset("./\\*?[]{}~:")


def _table_name_at(tokens: list[Token], i: int) -> list[Token]:
    """The dotted name starting at ``i``: its parts, without the dots."""
    parts = [tokens[i]]
    j = i + 1
    while j + 1 < len(tokens) and tokens[j] == ("symbol", ".") and tokens[j + 1][0] in ("word", "quoted", "string"):
        parts.append(tokens[j + 1])
        j += 2
    return parts


def file_scan_refusal(tokens: list[Token]) -> str | None:
    """Why a name in a table position would make DuckDB read a file, or None when none would.

    A table position is the name right after FROM, JOIN, PIVOT, UNPIVOT, DESCRIBE, SUMMARIZE or
    SHOW, or right after a comma of a FROM list (at the same parenthesis level, until WHERE,
    GROUP, ORDER, a set operation ...). Refused there: any string literal (``FROM 'x.csv'``);
    a quoted name holding a character of a path or a pattern (``. / \\ * ? [ ] { } ~ :``); and
    a dotted unquoted name whose last part is a file suffix (:data:`FILE_SUFFIXES`:
    ``FROM sales.csv``). Names of the database's tables never look like that (a table whose own
    name holds a dot cannot be queried on DuckDB through QuorumSQL). Also refused: ``glob(...)``
    with no operand before it, DuckDB's file-listing table function (the shared function tables
    read ``glob`` as SQLite's GLOB operator).

    Args:
        tokens: the statement as (kind, value) tokens (see :data:`Token`).

    Returns:
        A one-line reason naming the name, or None.
    """
    levels: list[str | None] = [None]  # per parenthesis: "from" in a FROM list, "call" in arguments
    prev: Token = ("symbol", "")
    after_table_word = False
    for i, (kind, value) in enumerate(tokens):
        low = value.lower() if kind == "word" else ""
        at_table = after_table_word or (prev == ("symbol", ",") and levels[-1] == "from")
        after_table_word = False
        if (kind, value) == ("symbol", "("):
            # the arguments of a call: FROM there is EXTRACT(YEAR FROM d), TRIM(BOTH FROM s)
            call = prev[0] == "quoted" or (prev[0] == "word" and prev[1].lower() not in STRUCTURAL_WORDS
                                           and prev[1].lower() not in _TABLE_WORDS)
            levels.append("call" if call else None)
        elif (kind, value) == ("symbol", ")"):
            if len(levels) > 1:
                levels.pop()
        elif low in _TABLE_WORDS and levels[-1] != "call":
            after_table_word = True
            if low in ("from", "join"):
                levels[-1] = "from"
        elif low in _FROM_ENDS and levels[-1] != "call":
            levels[-1] = None
        if (kind, low) == ("word", "glob") and i + 1 < len(tokens) and tokens[i + 1] == ("symbol", "(") and not (
            prev[0] in ("string", "number", "quoted") or prev == ("symbol", ")")
            or (prev[0] == "word" and prev[1].lower() not in STRUCTURAL_WORDS | _TABLE_WORDS)
        ):
            # GLOB is an operator to the function tables (SQLite's x GLOB y); with no operand
            # before it, glob(...) is DuckDB's table function that lists files
            return "the function glob() is not allowed: it lists files on the machine"
        if at_table and kind in ("string", "quoted", "word"):
            parts = _table_name_at(tokens, i)
            shown = ".".join(v for _, v in parts)
            if any(k == "string" for k, _ in parts):
                return (f"the string '{shown}' is used as a table: DuckDB would read the file of that name; "
                        "only the database's own tables can be queried")
            if any(k == "quoted" and (_PATH_CHARS & set(v)) for k, v in parts):
                return (f'the quoted name "{shown}" is used as a table and looks like a file or a pattern: '
                        "DuckDB would read it; only the database's own tables can be queried")
            if len(parts) > 1 and parts[-1][0] == "word" and parts[-1][1].lower() in FILE_SUFFIXES:
                return (f"the name {shown} is used as a table and ends like a file name: DuckDB would read "
                        "the file; only the database's own tables can be queried")
        prev = (kind, value)
    return None
