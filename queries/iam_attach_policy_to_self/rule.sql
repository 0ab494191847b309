SELECT * FROM cloudtrail
WHERE eventSource = 'iam.amazonaws.com'
  AND errorCode IS NULL
  AND userIdentity.invokedBy IS NULL
  AND (
        (eventName = 'AttachUserPolicy'
         AND userIdentity.type = 'IAMUser'
         AND json_extract_string(requestParameters, '$.userName') = userIdentity.userName)
     OR (eventName = 'AttachRolePolicy'
         AND userIdentity.type = 'AssumedRole'
         AND json_extract_string(requestParameters, '$.roleName')
             = userIdentity.sessionContext.sessionIssuer.userName)
  )
