SELECT * FROM cloudtrail
WHERE eventSource = 'sagemaker.amazonaws.com'
  AND eventName = 'CreateNotebookInstance'
  AND json_extract_string(requestParameters, '$.roleArn') IS NOT NULL
  AND errorCode IS NULL
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
