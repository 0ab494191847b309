SELECT * FROM cloudtrail
WHERE (errorCode LIKE '%UnauthorizedOperation' OR errorCode LIKE 'AccessDenied%')
  AND sourceIPAddress IS DISTINCT FROM 'delivery.logs.amazonaws.com'
  AND eventName IS DISTINCT FROM 'HeadBucket'
