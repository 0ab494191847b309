WITH changes AS (
  SELECT eventID, eventTime, eventName, userIdentity,
         json_extract_string(requestParameters, '$.roleName') AS _role,
         coalesce(recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE eventSource = 'iam.amazonaws.com' AND errorCode IS NULL
    AND eventName IN ('UpdateAssumeRolePolicy', 'AttachRolePolicy', 'PutRolePolicy',
                      'PutRolePermissionsBoundary', 'DeleteRolePermissionsBoundary')
    AND ts_is_caller(userIdentity, eventType)
), assumes AS (
  SELECT eventID, eventTime, eventName, userIdentity, regexp_extract(json_extract_string(requestParameters, '$.roleArn'),
                           ':role/(?:.*/)?([^/]+)$', 1) AS _role,
         coalesce(regexp_extract(json_extract_string(requestParameters, '$.roleArn'),
                                 'arn:[^:]+:iam::(\d+):', 1), recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE eventSource = 'sts.amazonaws.com' AND errorCode IS NULL
    AND eventName IN ('AssumeRole', 'AssumeRoleWithWebIdentity', 'AssumeRoleWithSAML')
), pairs AS (
  SELECT c.eventID AS cid, a.eventID AS aid, ts_principal(c.userIdentity) AS who,
         format('{} on role {} at {}, then {} of it by {} {} s later', c.eventName, c._role,
                strftime(c.eventTime, '%Y-%m-%d %H:%M:%SZ'), a.eventName,
                ts_principal(a.userIdentity), date_diff('second', c.eventTime, a.eventTime)) AS evidence
  FROM changes c JOIN assumes a ON a._role = c._role AND a._acct = c._acct
   AND a.eventTime > c.eventTime
   AND a.eventTime <= c.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')
), ids AS (SELECT unnest([cid, aid]) AS eventID, who, evidence FROM pairs)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
