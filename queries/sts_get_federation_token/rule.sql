SELECT * FROM cloudtrail
WHERE eventSource = 'sts.amazonaws.com'
  AND eventName = 'GetFederationToken'
  AND userIdentity.type = 'IAMUser'
  AND errorCode IS NULL
