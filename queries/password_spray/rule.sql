WITH fails AS MATERIALIZED (
  SELECT *, time_bucket(INTERVAL 1 MINUTE * getvariable('window_minutes'), eventTime) AS _w
  FROM (
  SELECT eventID, eventTime, sourceIPAddress, userIdentity,
         coalesce(recipientAccountId, userIdentity.accountId, '') AS _acct,
         coalesce(nullif(userIdentity.userName, ''), userIdentity.type, 'unknown') AS _user,
         coalesce(json_extract_string(responseElements, '$.ConsoleLogin'),
                  CASE WHEN errorMessage IS NOT NULL THEN 'Failure' END) AS _result
  FROM cloudtrail
  WHERE eventSource = 'signin.amazonaws.com' AND eventName = 'ConsoleLogin'
) WHERE _result = 'Failure'
), sprays AS (
  SELECT sourceIPAddress, _w,
         format('{} failed sign-ins for {} distinct users from {} in the {} minutes from {}',
                count(*), count(DISTINCT _user), sourceIPAddress, getvariable('window_minutes'),
                strftime(_w, '%Y-%m-%d %H:%MZ')) AS evidence
  FROM fails GROUP BY sourceIPAddress, _w HAVING count(DISTINCT _user) >= getvariable('min_users')
)
SELECT c.*, ids.evidence, ids.finding_principal
FROM cloudtrail c
JOIN (SELECT eventID, evidence, sourceIPAddress AS finding_principal
      FROM fails JOIN sprays USING (sourceIPAddress, _w)) ids USING (eventID)
