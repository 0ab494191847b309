SELECT * FROM cloudtrail
WHERE eventSource = 'guardduty.amazonaws.com'
  AND ((eventName = 'UpdateDetector' AND json_extract_string(requestParameters, '$.enable') = 'false')
    OR eventName IN ('CreateIPSet', 'UpdateIPSet', 'DeleteMembers', 'DisassociateMembers', 'StopMonitoringMembers',
                     'DisassociateFromMasterAccount', 'DisassociateFromAdministratorAccount'))
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
