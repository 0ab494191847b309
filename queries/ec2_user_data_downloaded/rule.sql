SELECT * FROM cloudtrail
WHERE eventSource = 'ec2.amazonaws.com'
  AND eventName = 'DescribeInstanceAttribute'
  AND json_extract_string(requestParameters, '$.attribute') = 'userData'
  AND userIdentity.type IS DISTINCT FROM 'AWSService' AND userIdentity.invokedBy IS NULL AND eventType IS DISTINCT FROM 'AwsServiceEvent'
