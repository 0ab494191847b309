WITH profiles AS (
  SELECT eventID, eventTime, eventName, userIdentity,
         json_extract_string(requestParameters, '$.userName') AS _user,
         coalesce(recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE eventSource = 'iam.amazonaws.com' AND errorCode IS NULL
    AND eventName IN ('CreateLoginProfile', 'UpdateLoginProfile')
), logins AS (
  SELECT eventID, eventTime, sourceIPAddress, userIdentity.userName AS _user,
         coalesce(recipientAccountId, '') AS _acct
  FROM cloudtrail
  WHERE eventSource = 'signin.amazonaws.com' AND eventName = 'ConsoleLogin'
    AND json_extract_string(responseElements, '$.ConsoleLogin') = 'Success'
), pairs AS (
  SELECT p.eventID AS pid, l.eventID AS lid, ts_principal(p.userIdentity) AS who,
         format('{} for {} by {} at {}, then a console sign-in of {} from {} {} s later',
                p.eventName, p._user, ts_principal(p.userIdentity),
                strftime(p.eventTime, '%Y-%m-%d %H:%M:%SZ'), p._user, l.sourceIPAddress,
                date_diff('second', p.eventTime, l.eventTime)) AS evidence
  FROM profiles p JOIN logins l ON l._user = p._user AND l._acct = p._acct
   AND l.eventTime > p.eventTime
   AND l.eventTime <= p.eventTime + INTERVAL 1 MINUTE * getvariable('window_minutes')
), ids AS (SELECT unnest([pid, lid]) AS eventID, who, evidence FROM pairs)
SELECT c.*, ids.evidence, ids.who AS finding_principal FROM cloudtrail c JOIN ids USING (eventID)
