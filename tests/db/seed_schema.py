"""The seed's schema (seed/architecture.md) as data: what the catalog must show.

Columns: "name type [not null] [= default]" with types as `format_type()` prints them.
Keys of the time-partitioned tables include their time column (a fix of the seed).
"""

from __future__ import annotations

TS = "timestamp with time zone"

COLUMNS: dict[str, str] = {
    "strategies": f"""
        id uuid not null = gen_random_uuid()
        name character varying(100) not null
        version character varying(20) not null
        description text
        author character varying(100)
        config jsonb not null
        timeframe character varying(5) not null
        symbols text[] not null
        is_active boolean = false
        is_paper_trading boolean = true
        total_trades integer = 0
        winning_trades integer = 0
        total_pnl numeric(18,8) = 0
        max_drawdown numeric(8,4) = 0
        created_at {TS} = now()
        updated_at {TS} = now()
        last_executed_at {TS}
    """,
    "trades": f"""
        id uuid not null = gen_random_uuid()
        strategy_id uuid not null
        external_order_id character varying(100)
        symbol character varying(20) not null
        side character varying(5) not null
        type character varying(20) = 'MARKET'
        entry_price numeric(18,8) not null
        exit_price numeric(18,8)
        quantity numeric(18,8) not null
        filled_quantity numeric(18,8) = 0
        entry_time {TS} not null = now()
        exit_time {TS}
        pnl numeric(18,8)
        pnl_percent numeric(8,4)
        fees numeric(18,8) = 0
        status character varying(20) = 'OPEN'
        exit_reason character varying(50)
        entry_signal jsonb
        exit_signal jsonb
        entry_tag character varying(100)
        exit_tag character varying(100)
        stop_loss_price numeric(18,8)
        take_profit_price numeric(18,8)
        metadata jsonb = '{{}}'
        notes text
        created_at {TS} = now()
        updated_at {TS} = now()
    """,
    "market_data": f"""
        id bigint not null = nextval
        symbol character varying(20) not null
        timeframe character varying(5) not null
        timestamp {TS} not null
        open numeric(18,8) not null
        high numeric(18,8) not null
        low numeric(18,8) not null
        close numeric(18,8) not null
        volume numeric(18,8) not null
        trades_count integer
        vwap numeric(18,8)
        data_source character varying(20) = 'dydx'
        data_quality_score smallint = 100
        created_at {TS} = now()
    """,
    "strategy_metrics": f"""
        id uuid not null = gen_random_uuid()
        strategy_id uuid not null
        date date not null
        total_trades integer = 0
        winning_trades integer = 0
        losing_trades integer = 0
        total_pnl numeric(18,8) = 0
        gross_profit numeric(18,8) = 0
        gross_loss numeric(18,8) = 0
        win_rate numeric(5,4) = 0
        profit_factor numeric(8,4) = 0
        max_drawdown numeric(8,4) = 0
        max_drawdown_duration integer = 0
        sharpe_ratio numeric(8,4)
        sortino_ratio numeric(8,4)
        calmar_ratio numeric(8,4)
        avg_trade_duration integer
        max_trade_duration integer
        avg_win numeric(18,8)
        avg_loss numeric(18,8)
        largest_win numeric(18,8)
        largest_loss numeric(18,8)
        var_95 numeric(18,8)
        cvar_95 numeric(18,8)
        market_correlation numeric(5,4)
        beta numeric(8,4)
        alpha numeric(8,4)
        created_at {TS} = now()
        updated_at {TS} = now()
    """,
    "orders": f"""
        id uuid not null = gen_random_uuid()
        trade_id uuid
        strategy_id uuid not null
        external_order_id character varying(100)
        client_order_id character varying(100)
        symbol character varying(20) not null
        side character varying(5) not null
        type character varying(20) not null
        quantity numeric(18,8) not null
        price numeric(18,8)
        stop_price numeric(18,8)
        filled_quantity numeric(18,8) = 0
        remaining_quantity numeric(18,8)
        status character varying(20) = 'PENDING'
        time_in_force character varying(5) = 'GTC'
        reduce_only boolean = false
        created_at {TS} = now()
        submitted_at {TS}
        filled_at {TS}
        cancelled_at {TS}
        avg_fill_price numeric(18,8)
        fees numeric(18,8) = 0
        error_message text
        retry_count integer = 0
        metadata jsonb = '{{}}'
    """,
    "portfolio_snapshots": f"""
        id uuid not null = gen_random_uuid()
        strategy_id uuid
        snapshot_time {TS} not null = now()
        total_value numeric(18,8) not null
        cash_balance numeric(18,8) not null
        unrealized_pnl numeric(18,8) = 0
        realized_pnl numeric(18,8) = 0
        positions jsonb not null = '[]'
        open_orders_count integer = 0
        total_exposure numeric(18,8) = 0
        leverage numeric(8,4) = 0
        daily_pnl numeric(18,8)
        daily_pnl_percent numeric(8,4)
        metadata jsonb = '{{}}'
    """,
    "backtests": f"""
        id uuid not null = gen_random_uuid()
        strategy_id uuid not null
        name character varying(200) not null
        description text
        symbol character varying(20) not null
        timeframe character varying(5) not null
        start_date {TS} not null
        end_date {TS} not null
        initial_capital numeric(18,8) not null
        commission numeric(8,6) = 0
        slippage numeric(8,6) = 0
        total_return numeric(8,4)
        annualized_return numeric(8,4)
        volatility numeric(8,4)
        max_drawdown numeric(8,4)
        sharpe_ratio numeric(8,4)
        total_trades integer
        winning_trades integer
        win_rate numeric(5,4)
        profit_factor numeric(8,4)
        detailed_results jsonb
        equity_curve jsonb
        trade_list jsonb
        execution_time_ms integer
        data_points_processed integer
        status character varying(20) = 'PENDING'
        error_message text
        created_at {TS} = now()
        started_at {TS}
        completed_at {TS}
    """,
    "system_logs": f"""
        id bigint not null = nextval
        timestamp {TS} not null = now()
        level character varying(10) not null
        category character varying(50) not null
        strategy_id uuid
        trade_id uuid
        order_id uuid
        message text not null
        details jsonb
        user_id character varying(100)
        session_id character varying(100)
        ip_address inet
        user_agent text
    """,
    "system_config": f"""
        key character varying(100) not null
        value jsonb not null
        description text
        category character varying(50) = 'general'
        data_type character varying(20) not null
        is_sensitive boolean = false
        created_at {TS} = now()
        updated_at {TS} = now()
        updated_by character varying(100)
    """,
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "strategies": ("id",),
    "trades": ("id",),
    # 0020: a series is (venue, symbol, timeframe); spot and perpetual, or two exchanges,
    # of one pair no longer collide
    "market_data": ("venue", "symbol", "timeframe", "timestamp"),
    "strategy_metrics": ("id",),
    "orders": ("id",),
    "portfolio_snapshots": ("id", "snapshot_time"),
    "backtests": ("id",),
    "system_logs": ("id", "timestamp"),
    "system_config": ("key",),
}

UNIQUE: dict[str, list[tuple[str, ...]]] = {
    "strategies": [("name",)],
    "strategy_metrics": [("strategy_id", "date")],
    "orders": [("external_order_id",)],
}

# (table, column) -> (referenced table, on delete)
FOREIGN_KEYS: dict[tuple[str, str], tuple[str, str]] = {
    ("trades", "strategy_id"): ("strategies", "CASCADE"),
    ("strategy_metrics", "strategy_id"): ("strategies", "CASCADE"),
    ("orders", "trade_id"): ("trades", "SET NULL"),
    ("orders", "strategy_id"): ("strategies", "CASCADE"),
    ("portfolio_snapshots", "strategy_id"): ("strategies", "CASCADE"),
    ("backtests", "strategy_id"): ("strategies", "CASCADE"),
    ("system_logs", "strategy_id"): ("strategies", "SET NULL"),
    ("system_logs", "trade_id"): ("trades", "SET NULL"),
    ("system_logs", "order_id"): ("orders", "SET NULL"),
}

# Every index of the seed: name -> (table, definition fragment after "USING").
# idx_market_data_symbol_tf_time is left out on purpose: it duplicates the primary key.
INDEXES: dict[str, tuple[str, str]] = {
    "idx_strategies_active": ("strategies", "btree (is_active, is_paper_trading)"),
    "idx_strategies_symbols": ("strategies", "gin (symbols)"),
    "idx_strategies_timeframe": ("strategies", "btree (timeframe)"),
    "idx_strategies_performance": ("strategies", "btree (total_pnl DESC, max_drawdown)"),
    "idx_trades_strategy_symbol": ("trades", "btree (strategy_id, symbol)"),
    "idx_trades_symbol_time": ("trades", "btree (symbol, entry_time DESC)"),
    "idx_trades_status": ("trades", "btree (status) WHERE"),
    "idx_trades_pnl": ("trades", "btree (pnl DESC) WHERE (pnl IS NOT NULL)"),
    "idx_trades_entry_time": ("trades", "btree (entry_time DESC)"),
    "idx_trades_strategy_performance": (
        "trades",
        "btree (strategy_id, pnl) WHERE (pnl IS NOT NULL)",
    ),
    "idx_trades_active": ("trades", "btree (symbol, entry_time) WHERE"),
    "idx_market_data_time": ("market_data", 'btree ("timestamp" DESC)'),
    "idx_strategy_metrics_strategy_date": ("strategy_metrics", "btree (strategy_id, date DESC)"),
    "idx_strategy_metrics_performance": (
        "strategy_metrics",
        "btree (total_pnl DESC, sharpe_ratio DESC)",
    ),
    "idx_strategy_metrics_risk": ("strategy_metrics", "btree (max_drawdown, var_95)"),
    "idx_orders_strategy_symbol": ("orders", "btree (strategy_id, symbol)"),
    "idx_orders_status": ("orders", "btree (status, created_at DESC)"),
    "idx_orders_external_id": (
        "orders",
        "btree (external_order_id) WHERE (external_order_id IS NOT NULL)",
    ),
    "idx_orders_pending": ("orders", "btree (created_at) WHERE"),
    "idx_portfolio_snapshots_strategy_time": (
        "portfolio_snapshots",
        "btree (strategy_id, snapshot_time DESC)",
    ),
    "idx_portfolio_snapshots_time": ("portfolio_snapshots", "btree (snapshot_time DESC)"),
    "idx_backtests_strategy": ("backtests", "btree (strategy_id, created_at DESC)"),
    "idx_backtests_performance": (
        "backtests",
        "btree (sharpe_ratio DESC, total_return DESC) WHERE",
    ),
    "idx_backtests_symbol_timeframe": ("backtests", "btree (symbol, timeframe)"),
    "idx_system_logs_level_time": ("system_logs", 'btree (level, "timestamp" DESC)'),
    "idx_system_logs_category": ("system_logs", 'btree (category, "timestamp" DESC)'),
    "idx_system_logs_strategy": ("system_logs", 'btree (strategy_id, "timestamp" DESC) WHERE'),
    "idx_system_config_category": ("system_config", "btree (category)"),
}

# Every CHECK of the seed: (table, constraint name, fragment of its definition).
CHECKS: list[tuple[str, str, str]] = [
    ("strategies", "strategies_timeframe_check", "'1m'"),
    ("strategies", "valid_config", "jsonb_typeof(config)"),
    ("strategies", "valid_symbols", "cardinality(symbols) > 0"),  # seed: array_length
    ("trades", "trades_side_check", "'BUY'"),
    ("trades", "trades_type_check", "'TAKE_PROFIT'"),
    ("trades", "trades_quantity_check", "quantity > (0)::numeric"),
    ("trades", "trades_status_check", "'PARTIALLY_FILLED'"),
    ("market_data", "market_data_data_quality_score_check", "data_quality_score >= 0"),
    ("market_data", "valid_ohlc", "high >= low"),
    ("market_data", "valid_volume", "volume >= (0)::numeric"),
    ("strategy_metrics", "strategy_metrics_win_rate_check", "win_rate >= (0)::numeric"),
    ("orders", "orders_side_check", "'SELL'"),
    ("orders", "orders_type_check", "'STOP_LIMIT'"),
    ("orders", "orders_quantity_check", "quantity > (0)::numeric"),
    ("orders", "orders_status_check", "'PARTIAL_FILLED'"),
    ("orders", "orders_time_in_force_check", "'FOK'"),
    ("backtests", "backtests_status_check", "'COMPLETED'"),
    ("system_logs", "system_logs_level_check", "'FATAL'"),
    ("system_config", "system_config_data_type_check", "'array'"),
]


# Columns tradestore adds after the seed's, each for a reason given in its migration.
ADDED_COLUMNS: dict[str, str] = {
    "orders": """
        filled_notional numeric not null = 0
    """,  # 0014: the exact notional, so the average fill price does not drift
    "market_data": """
        venue character varying(20) not null = 'dydx'
    """,  # 0020: the series' exchange, part of its key; the seed's data was dYdX's
}


def parse_columns(table: str) -> dict[str, tuple[str, bool, str | None]]:
    """name -> (type, not null, default fragment or None): the seed's, then ours."""
    parsed: dict[str, tuple[str, bool, str | None]] = {}
    lines = COLUMNS[table].strip().splitlines() + ADDED_COLUMNS.get(table, "").strip().splitlines()
    for line in lines:
        spec, _, default = line.strip().partition(" = ")
        not_null = spec.endswith(" not null")
        spec = spec.removesuffix(" not null")
        name, _, type_ = spec.partition(" ")
        parsed[name] = (type_, not_null, default or None)
    return parsed
