-- title: Mode timeline
-- chart: table
-- Every mode transition: when, from what to what, what triggered it and why.
SELECT
    at AS time,
    from_mode,
    to_mode,
    trigger,
    reason,
    scope
FROM mode_changes FINAL
ORDER BY at
