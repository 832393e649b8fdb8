locals {
  bucket_arn = "arn:aws:s3:::${var.bucket}"

  # What Harbor's registry storage driver needs, and nothing else.
  object_actions = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
    "s3:ListBucketMultipartUploads",
  ]

  bucket_admin_actions = concat(
    ["s3:CreateBucket", "s3:DeleteBucket"],
    var.deny_policy_changes ? ["s3:PutBucketPolicy", "s3:DeleteBucketPolicy"] : [],
  )

  statements = concat(
    var.grant_object_access ? [{
      Sid      = "HarborObjectAccess"
      Effect   = "Allow"
      Action   = local.object_actions
      Resource = [local.bucket_arn, "${local.bucket_arn}/*"]
    }] : [],
    [{
      Sid      = "NoBucketAdministration"
      Effect   = "Deny"
      Action   = local.bucket_admin_actions
      Resource = ["arn:aws:s3:::*"]
    }],
  )

  # Principal is added only when one is given; filtering the null out keeps
  # both policy forms (bucket policy, user policy) one expression.
  principal = var.principal == null ? null : { AWS = [var.principal] }
  policy_statements = [
    for statement in local.statements :
    { for key, value in merge(statement, { Principal = local.principal }) : key => value if value != null }
  ]
}
