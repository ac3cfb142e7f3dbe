"""Plain words for the codes the customer, courier and storefront pages can meet.

Each entry: ``zh`` and ``en`` say what happened, ``next_zh`` / ``next_en`` (optional)
what to do now. ``common`` applies everywhere; a page's own table (``activate``,
``courier``, ``order``) overrides it where the same code means something else there (a
face that does not match is the buyer's problem on the activation page and a reason to
keep the SIM on the courier's). Codes a page meets without an entry are shown as the
code itself under a generic sentence, never hidden. ``tests/api/test_pages.py`` checks
that every reason the decision rules and the workers emit has an entry.
"""

from __future__ import annotations

from typing import Final

Text = dict[str, str]


def _t(zh: str, en: str, next_zh: str = "", next_en: str = "") -> Text:
    out = {"zh": zh, "en": en}
    if next_zh:
        out |= {"next_zh": next_zh, "next_en": next_en}
    return out


_UPLOAD: Final[dict[str, Text]] = {
    "upload.too_large": _t(
        "文件太大",
        "The file is too large.",
        "请换一张较小的照片或缩短视频。",
        "Use a smaller photo or a shorter video.",
    ),
    "upload.too_many_pixels": _t(
        "图片像素过多",
        "The picture has too many pixels.",
        "请用手机相机的普通分辨率重拍。",
        "Retake it at the phone camera's normal resolution.",
    ),
    "upload.too_small": _t(
        "图片太小，看不清",
        "The picture is too small to read.",
        "请靠近一些重拍。",
        "Retake it closer.",
    ),
    "upload.empty": _t(
        "文件是空的", "The file is empty.", "请重新选择或拍摄。", "Pick or take it again."
    ),
    "upload.not_an_image": _t(
        "这不是图片文件",
        "This is not a picture.",
        "请选择 JPEG 或 PNG 照片。",
        "Pick a JPEG or PNG photo.",
    ),
    "upload.not_a_video": _t(
        "这不是视频文件", "This is not a video.", "请用本页面录制。", "Record it with this page."
    ),
    "upload.corrupt": _t("文件已损坏", "The file is damaged.", "请重新拍摄。", "Take it again."),
    "upload.truncated": _t(
        "文件没有传完整",
        "The file arrived incomplete.",
        "请检查网络后重试。",
        "Check the connection and try again.",
    ),
}

COMMON: Final[dict[str, Text]] = {
    **_UPLOAD,
    "network.error": _t(
        "网络连接失败",
        "The connection failed.",
        "请检查网络后重试。",
        "Check your connection and try again.",
    ),
    "http.error": _t(
        "服务器返回了错误",
        "The server answered with an error.",
        "请稍后重试。",
        "Try again in a moment.",
    ),
    "internal": _t(
        "系统出错了",
        "Something went wrong on our side.",
        "请稍后重试；已记录此问题。",
        "Try again later; the problem was logged.",
    ),
    "request.invalid": _t(
        "填写的内容格式不对",
        "Something filled in has the wrong format.",
        "请检查后重试。",
        "Check and try again.",
    ),
    "request.missing_field": _t(
        "有必填内容没有填写",
        "A required field is empty.",
        "请补全后重试。",
        "Fill it in and try again.",
    ),
    "auth.missing_key": _t(
        "缺少登录凭证", "The sign-in key is missing.", "请先填写您的凭证。", "Enter your key first."
    ),
    "auth.invalid_key": _t(
        "凭证无效", "The key is not valid.", "请检查后重新输入。", "Check it and enter it again."
    ),
    "auth.key_revoked": _t(
        "此凭证已停用", "This key was replaced.", "请使用新的凭证。", "Use your new key."
    ),
    "image.unreadable": _t(
        "照片无法读取",
        "A photo could not be read.",
        "请重新拍摄清晰的照片。",
        "Take a clear photo again.",
    ),
    "document.expired": _t(
        "身份证已过有效期",
        "The ID card has expired.",
        "请先换领新证，或携带有效证件到营业厅办理。",
        "Renew the card first, or visit a store with a valid ID.",
    ),
    "face.not_found": _t(
        "没有检测到人脸",
        "No face was found.",
        "请正对镜头、光线充足，露出整张脸。",
        "Face the camera in good light with the whole face visible.",
    ),
    "face.multiple": _t(
        "画面中有不止一张人脸",
        "More than one face was in view.",
        "请确保画面中只有本人。",
        "Make sure only one person is in view.",
    ),
    "face.mismatch": _t("人脸与身份证照片不是同一人", "The face does not match the ID card photo."),
    "face.uncertain": _t(
        "无法确定人脸与身份证照片是否为同一人",
        "We could not be sure the face matches the ID card photo.",
    ),
    "face.portrait_not_found": _t(
        "身份证照片无法用于比对", "The ID card photo cannot be compared."
    ),
}

ACTIVATE: Final[dict[str, Text]] = {
    "activation.bad_code": _t(
        "ICCID 或激活码不正确",
        "Unknown ICCID or wrong activation code.",
        "请核对卡套上印的 19-20 位 ICCID 和激活码。",
        "Check the 19-20 digit ICCID and the code printed on the SIM pack.",
    ),
    "activation.locked": _t(
        "输错次数过多，这张卡已暂时锁定",
        "Too many wrong codes: this SIM is locked for a while.",
        "请稍后再试，或联系客服。",
        "Try again later, or call customer service.",
    ),
    "activation.rate_limited": _t(
        "此网络输错次数过多",
        "Too many wrong codes from this network.",
        "请稍后再试。",
        "Try again later.",
    ),
    "activation.not_pending": _t(
        "这张卡不在待激活状态",
        "This SIM is not waiting for activation.",
        "它可能已经激活，或订单已取消；如有疑问请联系客服。",
        "It may be active already, or the order was cancelled; call customer service if unsure.",
    ),
    "activation.review": _t(
        "视频验证失败次数过多，需要人工审核",
        "Too many failed video checks: the carrier reviews this activation.",
        "客服会与您联系；您也可以携带身份证到营业厅办理。",
        "Customer service will contact you; you may also visit a store with your ID card.",
    ),
    "activation.not_found": _t(
        "找不到这次验证", "This check was not found.", "请重新开始。", "Start again."
    ),
    "liveness.challenge_failed": _t(
        "没有看到要求的动作，或顺序不对",
        "We did not see the actions asked, in the order asked.",
        "请正对镜头，按提示一个一个地做动作，幅度大一些。",
        "Face the camera and do each action clearly, one after the other.",
    ),
    "liveness.replay_suspected": _t(
        "视频像是照片、屏幕翻拍或旧录像",
        "The video looks like a photo, a screen or an earlier recording.",
        "请本人现场面对摄像头录制；照片、屏幕和旧视频都会被拒绝。",
        "Record yourself live; photos, screens and old videos are refused.",
    ),
    "liveness.video_unreadable": _t(
        "视频无法读取",
        "The video could not be read.",
        "请重试；如仍失败，请换用手机自带的浏览器。",
        "Try again; if it fails again, use the phone's own browser.",
    ),
    "liveness.expired": _t(
        "验证已超时",
        "The check expired before the video arrived.",
        "请重新开始，并在 5 分钟内完成录制。",
        "Start again and record within 5 minutes.",
    ),
    "liveness.challenge_used": _t(
        "这次验证已经用过了", "This check was used already.", "请重新开始。", "Start again."
    ),
    "face.not_found": _t(
        "视频中没有检测到人脸",
        "No face was found in the video.",
        "请让整张脸留在画面中，光线充足，不要戴口罩或帽子。",
        "Keep your whole face in the frame, in good light, without mask or hat.",
    ),
    "face.multiple": _t(
        "画面中有不止一张人脸",
        "More than one face was in view.",
        "请独自录制，身后不要有其他人。",
        "Record alone, with nobody behind you.",
    ),
    "face.changed": _t(
        "录制过程中换了人",
        "The face changed during the video.",
        "整个录制过程中必须是同一个人。",
        "The same person must stay in view the whole time.",
    ),
    "face.mismatch": _t(
        "人脸与购卡时核验的身份证照片不一致",
        "The face does not match the ID photo verified with the order.",
        "只有购卡人本人可以激活。如果是您本人，请在光线充足处重试。",
        "Only the buyer can activate the card. If that is you, try again in good light.",
    ),
    "face.uncertain": _t(
        "无法确认是否为购卡人本人",
        "We could not be sure you are the buyer.",
        "请正对镜头、摘下眼镜、在光线充足处重试。",
        "Try again facing the camera, glasses off, in good light.",
    ),
    "face.portrait_not_found": _t(
        "购卡时的身份证照片无法用于比对",
        "The ID photo on file cannot be compared.",
        "请携带身份证到营业厅激活。",
        "Visit a store with your ID card to activate.",
    ),
    "sim.not_pending_activation": _t(
        "这张卡不在待激活状态",
        "This SIM is not waiting for activation.",
        "它可能已经激活，或订单已取消；如有疑问请联系客服。",
        "It may be active already, or the order was cancelled; call customer service if unsure.",
    ),
    "camera.denied": _t(
        "没有获得摄像头权限",
        "The camera permission was refused.",
        "请在浏览器设置中允许本网站使用摄像头，然后刷新页面重试。",
        "Allow this site to use the camera in the browser settings, then reload the page.",
    ),
    "camera.missing": _t(
        "没有找到摄像头",
        "No camera was found.",
        "请换一台有前置摄像头的手机。",
        "Use a phone with a front camera.",
    ),
    "camera.busy": _t(
        "摄像头正被其他应用使用",
        "Another app is using the camera.",
        "请关闭其他使用摄像头的应用后重试。",
        "Close the other app and try again.",
    ),
    "camera.unsupported": _t(
        "此浏览器不能使用摄像头",
        "This browser cannot use the camera.",
        "请用手机自带的浏览器（Chrome、Safari）通过 https 打开本页。",
        "Open this page over https in the phone's own browser (Chrome, Safari).",
    ),
    "recorder.unsupported": _t(
        "此浏览器不能录制视频",
        "This browser cannot record video.",
        "请用最新版 Chrome 或 Safari 打开本页。",
        "Open this page in a recent Chrome or Safari.",
    ),
}

COURIER: Final[dict[str, Text]] = {
    "sim.not_awaiting_handover": _t(
        "这张卡不在待交付状态",
        "This SIM is not waiting for a door check.",
        "请勿交付，联系站点确认订单状态。",
        "Do not hand over; ask the depot about the order.",
    ),
    "handover.not_found": _t(
        "找不到这次核验",
        "This check was not found.",
        "请返回列表重试。",
        "Go back to the list and try again.",
    ),
    "delivery.not_deliverable": _t(
        "这一单不需要上门核验",
        "This order has no door check.",
        "请联系站点。",
        "Contact your depot.",
    ),
    "order.not_found": _t("找不到这个订单", "The order was not found."),
    "handover.card_mismatch": _t(
        "出示的身份证不是订单核验过的那张",
        "The ID card shown is not the one verified with the order.",
        "请勿交付 SIM 卡，只能交给持本人身份证的购卡人。",
        "Do not hand over the SIM: only to the buyer with their own ID card.",
    ),
    "handover.card_unreadable": _t(
        "身份证照片看不清",
        "The ID card photo could not be read.",
        "请将身份证人像面平放、拍全、对焦清楚、避免反光后重拍。",
        "Retake the portrait side flat, whole, in focus and without glare.",
    ),
    "face.not_found": _t(
        "面部照片中没有人脸",
        "No face was found in the face photo.",
        "请靠近收件人正面拍摄，光线充足。",
        "Photograph the recipient's face from the front, close, in good light.",
    ),
    "face.multiple": _t(
        "面部照片中有不止一个人",
        "More than one face is in the face photo.",
        "请只拍收件人本人。",
        "Photograph the recipient alone.",
    ),
    "face.mismatch": _t(
        "收件人不是购卡人本人",
        "The recipient is not the person who bought the card.",
        "请勿交付 SIM 卡。",
        "Do not hand over the SIM.",
    ),
    "face.uncertain": _t(
        "无法确认收件人是否为购卡人本人",
        "We could not be sure the recipient is the buyer.",
        "请靠近、正面、在光线充足处重拍面部照片。",
        "Retake the face photo closer, from the front, in good light.",
    ),
    "face.portrait_not_found": _t(
        "订单中的证件照片无法比对",
        "The ID photo on the order cannot be compared.",
        "请勿交付；运营商会人工审核该订单。",
        "Do not hand over; the carrier reviews the order.",
    ),
    "document.expired": _t(
        "身份证已过有效期",
        "The ID card has expired.",
        "请勿交付；收件人需持有效证件到营业厅办理。",
        "Do not hand over; the recipient must visit a store with a valid ID.",
    ),
    "handover.locked": _t(
        "核验失败次数过多，此单已锁定，由运营商审核",
        "Too many failed checks: the delivery is locked and the carrier reviews it.",
        "请勿交付，把 SIM 卡退回站点。",
        "Do not hand over; return the SIM to the depot.",
    ),
    "delivery.closed": _t(
        "这单已经结束，不能再核验",
        "This delivery is closed.",
        "如果多次核验失败，运营商会人工审核。",
        "After repeated failed checks the carrier reviews the order.",
    ),
    "delivery.busy": _t(
        "上一次核验还在进行中",
        "The previous check is still running.",
        "请等待结果。",
        "Wait for its result.",
    ),
    "delivery.not_found": _t("您的派送单里没有这一单", "This delivery is not on your round."),
    "courier.inactive": _t(
        "您的快递员账号已停用",
        "Your courier account is disabled.",
        "请联系站点负责人。",
        "Contact your depot.",
    ),
}

ORDER: Final[dict[str, Text]] = {
    "document.unreadable": _t(
        "身份证照片无法识别",
        "The ID card photos could not be read.",
        "请重新拍摄清晰、完整、无反光的照片。",
        "Take clear, whole photos without glare.",
    ),
    "document.side_missing": _t(
        "缺少身份证的一面",
        "One side of the ID card is missing.",
        "请分别上传人像面和国徽面。",
        "Upload the portrait side and the emblem side.",
    ),
    "document.side_wrong": _t(
        "身份证正反面放反了",
        "The ID card sides were swapped.",
        "人像面放在“正面”，国徽面放在“背面”。",
        "Put the portrait side as front and the emblem side as back.",
    ),
    "document.number_invalid": _t("身份证号码无效", "The ID number is not valid."),
    "document.fields_inconsistent": _t(
        "身份证上的信息前后矛盾", "The ID card's fields contradict each other."
    ),
    "document.not_yet_valid": _t("身份证尚未生效", "The ID card is not valid yet."),
    "document.number_corrected": _t(
        "号码经过修正，需要人工确认", "The number was corrected when read; a person confirms it."
    ),
    "document.field_from_number": _t(
        "部分信息取自号码，需要人工确认", "A field was taken from the number; a person confirms it."
    ),
    "quality.photocopy": _t("疑似复印件", "The ID card looks like a photocopy."),
    "quality.recapture": _t("疑似翻拍屏幕", "The ID card looks photographed from a screen."),
    "quality.blur": _t("照片有些模糊", "A photo is blurred."),
    "quality.glare": _t("照片有反光", "A photo has glare."),
    "quality.low_resolution": _t("照片分辨率偏低", "A photo has a low resolution."),
    "quality.incomplete_border": _t("证件边缘没有拍全", "The card's border is cut off."),
    "quality.occlusion": _t("证件有遮挡", "Part of the card is covered."),
    "identity.declared_mismatch": _t(
        "填写的姓名或号码与身份证不符", "The typed name or number does not match the ID card."
    ),
    "face.not_found": _t("手持照中没有检测到人脸", "No face was found in the selfie."),
    "face.multiple": _t("手持照中有不止一张人脸", "More than one face is in the selfie."),
    "face.mismatch": _t(
        "手持照中的人与身份证照片不是同一人",
        "The person in the selfie is not the person on the ID card.",
    ),
    "face.uncertain": _t(
        "人脸比对结果不确定，卡将不激活寄出，由视频验证激活",
        "The face comparison was not sure: the card ships inactive and a video check activates it.",
    ),
    "face.portrait_not_found": _t(
        "身份证照片无法用于比对，需要人工审核",
        "The ID card photo cannot be compared; a person reviews the order.",
    ),
    "selfie.card_missing": _t("手持照中没有看到身份证", "No ID card is held in the selfie."),
    "selfie.card_mismatch": _t(
        "手持的身份证与上传的身份证不一致",
        "The card held in the selfie is not the uploaded ID card.",
    ),
    "selfie.card_uncertain": _t(
        "手持的身份证看不清，卡将不激活寄出",
        "The held card could not be confirmed: the card ships inactive.",
    ),
    "lookup.name_mismatch": _t(
        "公民身份信息核查：姓名与号码不符", "National ID check: the name does not match the number."
    ),
    "lookup.not_found": _t("公民身份信息核查：查无此人", "National ID check: no such person."),
    "lookup.cancelled": _t(
        "公民身份信息核查：证件已注销", "National ID check: the ID was cancelled."
    ),
    "lookup.deceased": _t(
        "公民身份信息核查：证件持有人已死亡", "National ID check: the holder is deceased."
    ),
    "lookup.photo_mismatch": _t(
        "公民身份信息核查：照片不一致，需要人工审核",
        "National ID check: the photo differs; a person reviews the order.",
    ),
    "lookup.no_photo": _t("公民身份信息核查：没有留存照片", "National ID check: no photo on file."),
    "lookup.unavailable": _t(
        "公民身份信息核查系统暂时不可用，需要人工审核",
        "The national ID check was unavailable; a person reviews the order.",
    ),
    "lookup.not_checked": _t(
        "未完成公民身份信息核查，需要人工审核",
        "The national ID check was not done; a person reviews the order.",
    ),
    "lookup.request_refused": _t(
        "公民身份信息核查拒绝了请求，需要人工审核",
        "The national ID check refused the request; a person reviews the order.",
    ),
    "agent.revoked": _t("代理商资格已吊销", "The agent's licence is revoked."),
    "agent.suspended": _t("代理商已暂停营业", "The agent is suspended."),
    "agent.out_of_scope": _t(
        "代理商无权销售该省号码", "The agent may not sell numbers of this province."
    ),
    "processing.failed": _t(
        "系统多次处理失败，需要人工审核",
        "Processing failed repeatedly; a person reviews the order.",
    ),
    "policy.card_limit": _t(
        "该证件名下的号卡已达上限，需到营业厅办理",
        "This ID already holds the maximum number of cards: a store visit is needed.",
    ),
    "order.bad_name": _t(
        "姓名格式不对",
        "The name is not valid.",
        "请填写 1-64 个字符的姓名。",
        "Type a name of 1 to 64 characters.",
    ),
    "order.bad_id_number": _t(
        "身份证号码格式不对",
        "The ID number has the wrong format.",
        "18 位：17 位数字加一位数字或 X。",
        "18 characters: 17 digits and a digit or X.",
    ),
    "order.bad_msisdn": _t("手机号码格式不对", "The mobile number is not valid."),
    "order.unknown_msisdn": _t(
        "该号码不在库存中",
        "This number is not in the inventory.",
        "请重新加载号码后选择。",
        "Reload the numbers and pick one.",
    ),
    "order.msisdn_unavailable": _t(
        "该号码已被选走",
        "This number was taken.",
        "请重新加载号码后选择另一个。",
        "Reload the numbers and pick another.",
    ),
    "order.busy": _t("系统繁忙", "The system is busy.", "请稍后重试。", "Try again in a moment."),
    "order.not_found": _t("找不到这个订单", "The order was not found."),
    "idempotency.key_reused": _t(
        "重复提交了不同的内容",
        "A retry carried different content.",
        "请刷新页面后重新提交。",
        "Reload the page and submit again.",
    ),
}

# Labels: the liveness actions (services.domain.states.LIVENESS_ACTIONS; a test keeps
# them complete), order and delivery states, outcomes.
ACTIONS: Final[dict[str, Text]] = {
    "blink_twice": _t("眨两次眼", "Blink twice"),
    "turn_left": _t("向左转头，再转回来", "Turn your head to your left, then back"),
    "turn_right": _t("向右转头，再转回来", "Turn your head to your right, then back"),
    "open_mouth": _t("张大嘴，再合上", "Open your mouth wide, then close it"),
    "nod": _t("点一下头", "Nod once"),
}
ORDER_STATUSES: Final[dict[str, Text]] = {
    "received": _t("已收到", "Received"),
    "verifying": _t("识别证件和人脸", "Reading the ID card and faces"),
    "checking": _t("核查身份信息", "Checking the identity"),
    "waiting_lookup": _t("等待公民身份信息核查", "Waiting for the national ID check"),
    "decided": _t("已出结果", "Decided"),
}
OUTCOMES: Final[dict[str, Text]] = {
    "approved": _t("审核通过", "Approved"),
    "store_visit_required": _t("需到营业厅办理", "Store visit required"),
    "needs_review": _t("人工审核中", "A person reviews the order"),
    "rejected": _t("未通过", "Rejected"),
}
SHIP_MODES: Final[dict[str, Text]] = {
    "activate_on_handover": _t(
        "快递员上门核验本人后激活", "The courier checks the buyer at the door; that activates it"
    ),
    "ship_inactive": _t(
        "不激活寄出，收到后由本人视频激活", "Ships inactive; the buyer activates it by video"
    ),
}
DELIVERY_STATUSES: Final[dict[str, Text]] = {
    "assigned": _t("待派送", "To deliver"),
    "failed": _t("核验未通过，可重试", "Check failed; may retry"),
    "handed_over": _t("已交付", "Handed over"),
    "locked": _t("多次失败，待人工审核", "Failed too often; under review"),
    "cancelled": _t("订单已取消", "Order cancelled"),
}
LABELS: Final[dict[str, dict[str, dict[str, Text]]]] = {
    "activate": {"actions": ACTIONS},
    "courier": {"deliveries": DELIVERY_STATUSES},
    "order": {"statuses": ORDER_STATUSES, "outcomes": OUTCOMES, "ship_modes": SHIP_MODES},
}
PAGES: Final = {"activate": ACTIVATE, "courier": COURIER, "order": ORDER}


def texts_for(page: str) -> dict[str, object]:
    """What a page embeds (JSON): its reasons (the common entries, then the page's own)
    and its labels."""
    return {"reasons": {**COMMON, **PAGES[page]}, **LABELS[page]}
