WITH ingress AS (
    SELECT *
    FROM cloudtrail
    WHERE eventSource = 'ec2.amazonaws.com'
      AND eventName = 'AuthorizeSecurityGroupIngress'
      AND errorCode IS NULL
      AND userIdentity.type IS DISTINCT FROM 'AWSService'
),
permissions AS (
    -- ipPermissions.items[] (SDK/CLI --ip-permissions), or the flat form (--cidr --port)
    SELECT eventID, unnest(json_extract(requestParameters, '$.ipPermissions.items[*]')) AS perm
    FROM ingress
    UNION ALL
    SELECT eventID, requestParameters::JSON AS perm
    FROM ingress
),
open_ranges AS (
    SELECT eventID,
           coalesce(json_extract_string(perm, '$.ipProtocol'), 'tcp') AS protocol,
           coalesce(try_cast(json_extract_string(perm, '$.fromPort') AS INTEGER), 0) AS from_port,
           coalesce(try_cast(json_extract_string(perm, '$.toPort') AS INTEGER), 65535) AS to_port,
           list_concat(
               json_extract_string(perm, '$.ipRanges.items[*].cidrIp'),
               json_extract_string(perm, '$.ipv6Ranges.items[*].cidrIpv6'),
               [json_extract_string(perm, '$.cidrIp'), json_extract_string(perm, '$.cidrIpv6')]
           ) AS cidrs
    FROM permissions
)
SELECT *
FROM ingress
WHERE eventID IN (
    SELECT eventID
    FROM open_ranges
    WHERE len(list_filter(cidrs, lambda c: c LIKE '%/0')) > 0
      AND (protocol IN ('-1', 'all')
           OR (protocol IN ('tcp', '6')
               AND ((from_port <= 22 AND to_port >= 22)
                    OR (from_port <= 3389 AND to_port >= 3389))))
)
