SELECT *
FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND eventName = 'SetDefaultPolicyVersion'
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService'
