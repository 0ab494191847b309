WITH passes AS (
  SELECT eventID, eventTime, eventName, userIdentity, regexp_extract(coalesce(
             json_extract_string(requestParameters, '$.role'),
             json_extract_string(requestParameters, '$.iamInstanceProfile.arn'),
             json_extract_string(requestParameters, '$.iamInstanceProfile.name'),
             json_extract_string(requestParameters, '$.IamInstanceProfile.Arn'),
             json_extract_string(requestParameters, '$.IamInstanceProfile.Name')),
             '([^/]+)$', 1) AS _role,
         coalesce(recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE errorCode IS NULL AND eventName IN ('CreateFunction20150331', 'CreateFunction',
        'UpdateFunctionConfiguration20150331v2', 'UpdateFunctionConfiguration', 'RunInstances',
        'AssociateIamInstanceProfile', 'ReplaceIamInstanceProfileAssociation')
    AND ts_is_caller(userIdentity, eventType)
), writes AS (
  SELECT eventID, eventTime, eventName, userIdentity.sessionContext.sessionIssuer.userName AS _role,
         coalesce(recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE eventSource = 'iam.amazonaws.com' AND errorCode IS NULL
    AND NOT regexp_matches(eventName, '^(List|Get|Generate|Simulate)')
    AND userIdentity.type = 'AssumedRole'
), pairs AS (
  SELECT p.eventID AS pid, list(w.eventID) AS wids, ts_principal(p.userIdentity) AS who,
         format('{} passed role {} ({}) at {}; the role then made {} IAM writes ({}) within {} minutes',
                ts_principal(p.userIdentity), p._role, p.eventName,
                strftime(p.eventTime, '%Y-%m-%d %H:%M:%SZ'), count(*),
                array_to_string(list(DISTINCT w.eventName ORDER BY w.eventName), ', '),
                getvariable('window_minutes')) AS evidence
  FROM passes p JOIN writes w ON w._role = p._role AND w._acct = p._acct
   AND w.eventTime > p.eventTime
   AND w.eventTime <= p.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')
  GROUP BY p.eventID, p.userIdentity, p._role, p.eventName, p.eventTime
), ids AS (SELECT unnest(list_append(wids, pid)) AS eventID, who, evidence FROM pairs)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
