-- Instance-role sessions: credentials delivered by IMDS, session name = instance id.
WITH instance_calls AS (
    SELECT * FROM cloudtrail
    WHERE userIdentity.type = 'AssumedRole'
      AND (userIdentity.sessionContext.ec2RoleDelivery IS NOT NULL
           OR regexp_matches(coalesce(userIdentity.arn, ''), '/i-[0-9a-fA-F]{8,17}$'))
      AND sourceIPAddress IS NOT NULL
      AND sourceIPAddress NOT LIKE '%.amazonaws.com'
      AND sourceIPAddress <> 'AWS Internal'
      AND userIdentity.invokedBy IS NULL
),
-- Addresses long-term (human or CI) identities call from.
human_ips AS (
    SELECT DISTINCT sourceIPAddress AS ip FROM cloudtrail
    WHERE userIdentity.type IN ('IAMUser', 'Root') AND sourceIPAddress IS NOT NULL
)
SELECT * FROM instance_calls
WHERE sourceIPAddress IN (SELECT ip FROM human_ips)
