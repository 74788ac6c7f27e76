-- title: Storage per table
-- chart: table
-- What each table holds now: rows, bytes on disk and uncompressed, bytes per row, and
-- the TTL in force (lucidstream retention changes it).
SELECT
    table,
    sum(p.rows) AS stored_rows,
    round(sum(bytes_on_disk) / 1e6, 3) AS on_disk_mb,
    round(sum(data_uncompressed_bytes) / 1e6, 3) AS uncompressed_mb,
    round(sum(bytes_on_disk) / greatest(sum(p.rows), 1), 1) AS bytes_per_row,
    any(extract(t.engine_full, 'toIntervalSecond\\((\\d+)\\)')) AS ttl_s
FROM system.parts AS p
LEFT JOIN (SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()) AS t
    ON t.name = p.table
WHERE p.active AND p.database = currentDatabase()
GROUP BY table
ORDER BY on_disk_mb DESC
