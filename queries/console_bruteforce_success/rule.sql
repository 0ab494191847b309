WITH logins AS MATERIALIZED (
  SELECT eventID, eventTime, sourceIPAddress, userIdentity,
         coalesce(recipientAccountId, userIdentity.accountId, '') AS _acct,
         coalesce(nullif(userIdentity.userName, ''), userIdentity.type, 'unknown') AS _user,
         coalesce(json_extract_string(responseElements, '$.ConsoleLogin'),
                  CASE WHEN errorMessage IS NOT NULL THEN 'Failure' END) AS _result
  FROM cloudtrail
  WHERE eventSource = 'signin.amazonaws.com' AND eventName = 'ConsoleLogin'
), ok AS (
  SELECT * FROM logins WHERE _result = 'Success'
), hits AS (
  SELECT ok.eventID AS ok_id, ts_principal(ok.userIdentity) AS who,
         list(f.eventID) AS failed_ids, count(*) AS n,
         list(DISTINCT f.sourceIPAddress) AS ips
  FROM ok JOIN logins f ON f._acct = ok._acct AND f._user = ok._user AND f._result = 'Failure'
   AND f.eventTime < ok.eventTime
   AND f.eventTime >= ok.eventTime - INTERVAL 1 MINUTE * getvariable('window_minutes')
  GROUP BY ALL HAVING count(*) >= getvariable('min_failures')
), ids AS (
  SELECT unnest(list_append(failed_ids, ok_id)) AS eventID, who,
         format('{} failed sign-ins (from {}) within {} minutes before a successful one',
                n, array_to_string(ips, ', '), getvariable('window_minutes')) AS evidence
  FROM hits
)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
