WITH s3 AS MATERIALIZED (
  SELECT eventID, ts_principal(userIdentity) AS _p,
         coalesce(json_extract_string(requestParameters, '$.bucketName'), '?') AS _bucket,
         CASE WHEN eventName = 'GetObject' THEN 'GetObject'
              WHEN eventName IN ('ListObjects', 'ListObjectsV2') THEN 'ListObjects'
              WHEN eventName IN ('DeleteObject', 'DeleteObjects') THEN 'DeleteObject(s)'
              ELSE 'PutObject/CopyObject' END AS _op,
         coalesce(TRY_CAST(json_extract_string(additionalEventData, '$.bytesTransferredOut') AS DOUBLE), 0)
         + coalesce(TRY_CAST(json_extract_string(additionalEventData, '$.bytesTransferredIn') AS DOUBLE), 0) AS _bytes,
         date_trunc('hour', eventTime) AS _hour
  FROM cloudtrail
  WHERE eventSource = 's3.amazonaws.com'
    AND eventName IN ('GetObject', 'ListObjects', 'ListObjectsV2', 'DeleteObject', 'DeleteObjects',
                      'PutObject', 'CopyObject')
    AND errorCode IS NULL AND ts_is_caller(userIdentity, eventType)
), hourly AS (
  SELECT _p, _bucket, _op, _hour, count(*) AS n, sum(_bytes) AS b FROM s3 GROUP BY ALL
), scored AS (
  SELECT *, min(_hour) OVER (PARTITION BY _p) AS since,
         count(*) OVER w AS base_hours,
         coalesce(median(n) OVER w, 0) AS med_n, coalesce(mad(n) OVER w, 0) * 1.4826 AS sd_n,
         coalesce(median(b) OVER w, 0) AS med_b, coalesce(mad(b) OVER w, 0) * 1.4826 AS sd_b
  FROM hourly
  WINDOW w AS (PARTITION BY _p, _bucket, _op ORDER BY _hour
               RANGE BETWEEN INTERVAL 1 DAY * getvariable('baseline_days') PRECEDING
                         AND INTERVAL 1 HOUR PRECEDING)
), spikes AS (
  SELECT _p, _bucket, _op, _hour,
         format('{} x {} on s3://{} ({}) in the hour from {}; baseline over {} days: {}',
                n, _op, _bucket, format_bytes(b::BIGINT), strftime(_hour, '%Y-%m-%d %H:00Z'),
                getvariable('baseline_days'),
                CASE WHEN base_hours = 0 THEN 'none (first access to this bucket)'
                     ELSE format('median {} calls ({}) per active hour, MAD-sd {}, {} active hours',
                                 med_n, format_bytes(med_b::BIGINT), round(sd_n, 1), base_hours)
                END) AS evidence
  FROM scored
  WHERE _hour >= since + INTERVAL 1 DAY * getvariable('min_history_days')
    AND ((n >= getvariable('floor') AND n >= getvariable('ratio') * med_n
          AND n > med_n + getvariable('k') * sd_n)
      OR (b >= getvariable('bytes_floor') AND b >= getvariable('ratio') * med_b
          AND b > med_b + getvariable('k') * sd_b))
)
SELECT c.*, ids.evidence
FROM cloudtrail c
JOIN (SELECT eventID, evidence FROM s3 JOIN spikes USING (_p, _bucket, _op, _hour)) ids USING (eventID)
